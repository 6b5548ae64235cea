# The README's two commands: `make demo` and `make test`. Both create or reuse .venv.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OUT ?= out
DEMO_SIZE ?= 256x512
DEMO_FRAMES ?= 300

.PHONY: demo test venv lint bench clean

venv: $(STAMP)

# torch==2.13.0 first and pinned: an open range would pull a multi-GB CUDA build.
# torchvision is never installed (it breaks beside this torch build).
$(STAMP): setup.cfg Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[export,cpu,test]'
	$(PY) -c "import torch, sys; assert not torch.version.cuda, 'a CUDA build of torch was installed'; print('torch', torch.__version__, 'CPU build')"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/vermin --target=3.6- --no-tips --violations --exclude-regex '.*/tests/.*' runtime calib
	$(PY) -m pytest -q -ra

demo: $(STAMP)
	@mkdir -p $(OUT) engines
	$(VENV)/bin/rt-synth video $(OUT)/demo_drive.mp4 --frames $(DEMO_FRAMES) --fps 30 --seed 7 --size $(DEMO_SIZE)
	$(VENV)/bin/rt-export --arch swiftnet-rn18 $(DEMO_CHECKPOINT_ARG) --size $(DEMO_SIZE) --output engines/swiftnet-rn18_demo.onnx
	$(VENV)/bin/rt-segment --engine engines/swiftnet-rn18_demo.onnx --video $(OUT)/demo_drive.mp4 \
		--output $(OUT)/demo_segmented.mp4 --report $(OUT)/demo_report.json

bench: $(STAMP)
	$(PY) benchmarks/run_cpu_benchmarks.py --output BENCHMARKS.md

clean:
	rm -rf $(OUT) engines/*.onnx engines/*.json engines/*.plan
