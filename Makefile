# The README's two commands: `make demo` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out
DEMO_SIZE ?= 256x512
DEMO_FRAMES ?= 300
DEMO_CALIB_METHOD ?= percentile

.PHONY: demo test venv lint bench clean

venv: $(STAMP)

# torch==2.13.0 first and pinned: an open range would pull a multi-GB CUDA build.
# torchvision is never installed (it breaks beside this torch build).
$(STAMP): setup.cfg Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[export,cpu,openvino,test,ros]'
	$(PY) -c "import torch, sys; assert not torch.version.cuda, 'a CUDA build of torch was installed'; print('torch', torch.__version__, 'CPU build')"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/vermin --target=3.6- --no-tips --violations --exclude-regex '.*/tests/.*' runtime calib
	$(PY) -m pytest -q -ra

# The main job end to end on this CPU: a generated drive -> INT8 export of the committed demo
# checkpoint, calibrated on generated scenes -> rt-segment streams the video through it.
DEMO_CHECKPOINT ?= checkpoints/swiftnet-rn18_synthetic.pt
DEMO_ENGINE ?= engines/swiftnet-rn18_int8.onnx
demo: $(STAMP)
	@mkdir -p $(OUT) engines
	$(VENV)/bin/rt-synth video $(OUT)/demo_drive.mp4 --frames $(DEMO_FRAMES) --fps 30 --seed 7 --size $(DEMO_SIZE) -q
	$(VENV)/bin/rt-synth split $(OUT)/calib --split train --count 100 --seed 100 --size $(DEMO_SIZE) -q
	$(VENV)/bin/rt-synth split $(OUT)/heldout --split val --count 50 --seed 3 --size $(DEMO_SIZE) -q
	$(VENV)/bin/rt-export --arch swiftnet-rn18 --checkpoint $(DEMO_CHECKPOINT) --size $(DEMO_SIZE) \
		--precision int8 --calib $(OUT)/calib --calib-count 100 --calib-method $(DEMO_CALIB_METHOD) \
		--eval-data $(OUT)/heldout --output $(DEMO_ENGINE)
	$(VENV)/bin/rt-segment --engine $(DEMO_ENGINE) --video $(OUT)/demo_drive.mp4 \
		--output $(OUT)/demo_segmented.mp4 --report $(OUT)/demo_report.json
	@echo
	@echo "demo done: annotated video $(OUT)/demo_segmented.mp4, report $(OUT)/demo_report.json,"
	@echo "           engine $(DEMO_ENGINE) (+ .json manifest with calibration and accuracy vs FP32)"

bench: $(STAMP)
	$(PY) benchmarks/run_cpu_benchmarks.py --output BENCHMARKS.md

clean:
	rm -rf $(OUT) engines/*.onnx engines/*.json engines/*.plan
