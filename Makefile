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

.PHONY: demo test venv lint bench clean native native-lib native-asan native-check native-tools

venv: $(STAMP)

# torch==2.13.0 first and pinned: an open range would pull a multi-GB CUDA build.
# torchvision is never installed (it breaks beside this torch build).
$(STAMP): setup.cfg Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[export,cpu,openvino,test,ros]'
	$(PY) -c "import torch, sys; assert not torch.version.cuda, 'a CUDA build of torch was installed'; print('torch', torch.__version__, 'CPU build')"
	touch $(STAMP)

test: $(STAMP) native native-asan native-check
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

# libswiftrt, the native core (runtime/native, docs/native.md): CMake + Ninja build against the
# OpenVINO wheel's C++ SDK, then its C tests (ctest); the test engines are exported once into
# NATIVE_ENGINES by rt-export's code. native-asan: the same tests over 300 frames with
# AddressSanitizer + UBSan (leaks are errors). native-check: the TensorRT backend compiled
# (never linked or run here) against the public headers of TensorRT 8.2, 8.6 and 10.3.
NATIVE_BUILD ?= build/native
NATIVE_ASAN_BUILD ?= build/native-asan
NATIVE_ENGINES ?= build/native-engines
TRT_HEADERS ?= ../shared/third_party/tensorrt
TRT_VERSIONS ?= 8.2 8.6 10.3
CUDA_INCLUDE ?= /usr/local/cuda/include
NVCC ?= /usr/local/cuda/bin/nvcc
NATIVE_PATH = PATH="$(abspath $(VENV))/bin:$$PATH"
NATIVE_CONFIGURE = $(NATIVE_PATH) cmake -S runtime/native -G Ninja -Wno-dev \
	-DOpenVINO_DIR="$$($(PY) -c 'import openvino, os; print(os.path.join(os.path.dirname(openvino.__file__), "cmake"))')" \
	-DSWIFTRT_PYTHON="$(abspath $(PY))" -DSWIFTRT_TEST_ENGINES="$(abspath $(NATIVE_ENGINES))"

native-tools: $(STAMP)
	@cmake_ok=$$($(NATIVE_PATH) cmake --version 2>/dev/null | head -1 | awk '{split($$3, v, "."); print (v[1] > 3 || (v[1] == 3 && v[2] >= 16))}'); \
	if [ "$$cmake_ok" != 1 ] || ! $(NATIVE_PATH) command -v ninja >/dev/null; then \
		echo "installing cmake and ninja from PyPI into $(VENV)"; \
		$(PY) -m pip install -q --disable-pip-version-check 'cmake>=3.16' ninja; fi

native-lib: native-tools
	$(NATIVE_CONFIGURE) -B $(NATIVE_BUILD) -DCMAKE_BUILD_TYPE=Release
	$(NATIVE_PATH) cmake --build $(NATIVE_BUILD) -j2

native: native-lib
	cd $(NATIVE_BUILD) && $(NATIVE_PATH) ctest --output-on-failure

native-asan: native-tools
	$(NATIVE_CONFIGURE) -B $(NATIVE_ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSWIFTRT_SANITIZE=ON \
		-DSWIFTRT_BUILD_EXAMPLES=OFF -DSWIFTRT_TEST_FRAMES=300
	$(NATIVE_PATH) cmake --build $(NATIVE_ASAN_BUILD) -j2
	cd $(NATIVE_ASAN_BUILD) && $(NATIVE_PATH) ctest --output-on-failure

native-check:
	@test -d $(CUDA_INCLUDE) || { echo "no CUDA headers at $(CUDA_INCLUDE): set CUDA_INCLUDE (e.g. the nvidia-cuda-runtime-cu12 wheel's include/)"; exit 2; }
	@for v in $(TRT_VERSIONS); do \
		echo "TensorRT $$v: compiling runtime/native/src/backend_tensorrt.cpp (-fsyntax-only -Werror -Wall -Wextra)"; \
		$(CXX) -std=c++17 -fsyntax-only -Werror -Wall -Wextra -DSWIFTRT_WITH_TENSORRT \
			-isystem $(TRT_HEADERS)/$$v/include -isystem $(CUDA_INCLUDE) \
			-Iruntime/native/include -Iruntime/native/src runtime/native/src/backend_tensorrt.cpp || exit 1; \
	done
	@echo "core sources with SWIFTRT_WITH_TENSORRT on"; \
	for f in api engine; do $(CXX) -std=c++17 -fsyntax-only -Werror -Wall -Wextra -DSWIFTRT_WITH_TENSORRT \
		-Iruntime/native/include -Iruntime/native/src runtime/native/src/$$f.cpp || exit 1; done
	@if [ -x "$(NVCC)" ]; then \
		echo "device-frame kernel: nvcc -c runtime/native/src/preprocess_cuda.cu (compiled, never run here)"; \
		$(NVCC) -std=c++17 -c -Xcompiler -Wall,-Wextra,-Werror -Iruntime/native/include -Iruntime/native/src \
			runtime/native/src/preprocess_cuda.cu -o /dev/null || exit 1; \
	else echo "no nvcc at $(NVCC): the device-frame kernel was NOT compiled (set NVCC)"; fi

bench: $(STAMP)
	$(PY) benchmarks/run_cpu_benchmarks.py --output BENCHMARKS.md

clean:
	rm -rf $(OUT) engines/*.onnx engines/*.json engines/*.plan
