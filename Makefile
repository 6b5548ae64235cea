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

.PHONY: triton-server demo test venv lint bench clean native native-lib native-asan native-check native-tools native-static native-aarch64 native-ort-compat

venv: $(STAMP)

# torch==2.13.0 first and pinned: an open range would pull a multi-GB CUDA build.
# torchvision is never installed (it breaks beside this torch build).
$(STAMP): setup.cfg Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[export,cpu,openvino,test,ros,triton,ray,trt-rtx]'
	$(MAKE) triton-server
	$(PY) -c "import torch, sys; assert not torch.version.cuda, 'a CUDA build of torch was installed'; print('torch', torch.__version__, 'CPU build')"
	touch $(STAMP)

# A local Triton for tests/test_triton.py (x86-64 Linux): the nvidia-pytriton wheel's tritonserver
# (--no-deps: the wheel pins numpy < 2) and .venv-triton, the Python its Python-backend models run
# in (numpy < 2: the wheel's backend stub returns empty tensors from numpy 2 arrays). ~400 MB.
TRITON_VENV ?= .venv-triton
triton-server:
	@if [ "$$(uname -sm)" != "Linux x86_64" ]; then echo "no tritonserver wheel for $$(uname -sm): tests/test_triton.py will skip"; exit 0; fi; \
	$(PY) -m pip install -q --disable-pip-version-check --no-deps nvidia-pytriton==0.7.0 && \
	{ test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV); } && \
	$(TRITON_VENV)/bin/pip install -q --disable-pip-version-check 'numpy<2' onnxruntime 'opencv-python-headless<4.12'

test: $(STAMP) native native-asan native-check native-static
	$(VENV)/bin/vermin --target=3.6- --no-tips --violations --exclude-regex '.*/tests/.*' runtime calib
	$(PY) -m pytest -q -ra

# The main job end to end on this CPU: a generated drive -> INT8 export of the committed demo
# checkpoint, calibrated on generated scenes -> rt-segment streams the video through it on
# libswiftrt (the default engine: built first).
DEMO_CHECKPOINT ?= checkpoints/swiftnet-rn18_synthetic.pt
DEMO_ENGINE ?= engines/swiftnet-rn18_int8.onnx
demo: native-lib
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
# (never linked or run here) against the public headers of TensorRT 8.2, 8.6 and 10.3, vendored
# in third_party/tensorrt, and CUDA's runtime headers: /usr/local/cuda/include, or where that is
# absent the nvidia-cuda-runtime wheel's include/ (installed into the venv on first use).
NATIVE_BUILD ?= build/native
NATIVE_ASAN_BUILD ?= build/native-asan
NATIVE_ENGINES ?= build/native-engines
TRT_HEADERS ?= third_party/tensorrt
TRT_VERSIONS ?= 8.2 8.6 10.3
CUDA_INCLUDE ?= $(if $(wildcard /usr/local/cuda/include/cuda_runtime_api.h),/usr/local/cuda/include,$(CUDA_WHEEL_INCLUDE))
CUDA_WHEEL_INCLUDE = $(abspath $(VENV))/cuda-runtime-include
NVCC ?= $(firstword $(wildcard /usr/local/cuda/bin/nvcc) $(shell command -v nvcc))
NATIVE_PATH = PATH="$(abspath $(VENV))/bin:$$PATH"
NATIVE_CONFIGURE = $(NATIVE_PATH) cmake -S runtime/native -G Ninja -Wno-dev \
	-DOpenVINO_DIR="$$($(PY) -c 'import openvino, os; print(os.path.join(os.path.dirname(openvino.__file__), "cmake"))')" \
	-DONNXRUNTIME_ROOT="$$($(PY) -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')" \
	$(if $(ONNXRUNTIME_INCLUDE_DIR),-DONNXRUNTIME_INCLUDE_DIR="$(abspath $(ONNXRUNTIME_INCLUDE_DIR))") \
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

# native-static: libswiftrt.a (SWIFTRT_BUILD_STATIC), the examples linked against it and run, and
# installed: a consumer links it through find_package(swiftrt 1).
NATIVE_STATIC_BUILD ?= build/native-static
native-static: native-tools
	$(NATIVE_CONFIGURE) -B $(NATIVE_STATIC_BUILD) -DCMAKE_BUILD_TYPE=Release -DSWIFTRT_BUILD_STATIC=ON
	$(NATIVE_PATH) cmake --build $(NATIVE_STATIC_BUILD) -j2 --target srt_segment hello_swiftrt test_struct_evolution
	cd $(NATIVE_STATIC_BUILD) && $(NATIVE_PATH) ctest --output-on-failure -R '^(example|struct_evolution|install_and_consume)$$'
	$(NATIVE_STATIC_BUILD)/hello_swiftrt $(NATIVE_ENGINES)/seg.onnx

# native-ort-compat: the core's ONNX Runtime backend on an older ONNX Runtime (ORT_COMPAT: 1.16.3,
# JetPack 5's; the oldest it runs on is 1.10, whose opsets stop at 15, below the test engines' 17).
# PyPI's wheels ship libonnxruntime.so only from 1.20, so the C library comes from the npm package
# onnxruntime-node, ONNX Runtime's own build: the core linked against it, then its ONNX Runtime C tests.
ORT_COMPAT ?= 1.16.3
ORT_COMPAT_LIB = build/ort-$(ORT_COMPAT)/package/bin/napi-v3/linux/$(subst aarch64,arm64,$(subst x86_64,x64,$(shell uname -m)))
native-ort-compat: native-tools
	@test -f $(ORT_COMPAT_LIB)/libonnxruntime.so.$(ORT_COMPAT) || { mkdir -p build/ort-$(ORT_COMPAT) \
		&& cd build/ort-$(ORT_COMPAT) && npm pack -q onnxruntime-node@$(ORT_COMPAT) \
		&& tar xzf onnxruntime-node-$(ORT_COMPAT).tgz package/bin; }
	$(NATIVE_CONFIGURE) -B build/native-ort-$(ORT_COMPAT) -DCMAKE_BUILD_TYPE=Release -DSWIFTRT_WITH_OPENVINO=OFF \
		-DSWIFTRT_WITH_ONNXRUNTIME=ON -DONNXRUNTIME_ROOT="$(abspath $(ORT_COMPAT_LIB))"
	$(NATIVE_PATH) cmake --build build/native-ort-$(ORT_COMPAT) -j2 --target swiftrt test_abi
	cd build/native-ort-$(ORT_COMPAT) && $(NATIVE_PATH) ctest --output-on-failure -R '^test_abi_onnxruntime$$'

# native-aarch64: the backend-less core cross-built for aarch64 (needs g++-aarch64-linux-gnu;
# cmake/toolchains/aarch64-linux-gnu.cmake); prints the glibc/libstdc++ it needs and, where
# qemu-aarch64 is installed, runs the cross-built hello_swiftrt (no backend: it must say so).
NATIVE_AARCH64_BUILD ?= build/native-aarch64
native-aarch64: native-tools
	$(NATIVE_PATH) cmake -S runtime/native -B $(NATIVE_AARCH64_BUILD) -G Ninja -Wno-dev \
		-DCMAKE_TOOLCHAIN_FILE=$(abspath runtime/native/cmake/toolchains/aarch64-linux-gnu.cmake) \
		-DSWIFTRT_WITH_OPENVINO=OFF -DSWIFTRT_BUILD_TESTS=OFF
	$(NATIVE_PATH) cmake --build $(NATIVE_AARCH64_BUILD) -j2
	file -L $(NATIVE_AARCH64_BUILD)/libswiftrt.so | grep 'ARM aarch64'
	$(NATIVE_PATH) cmake -DLIB=$(NATIVE_AARCH64_BUILD)/libswiftrt.so \
		-DVERSION=$$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' $(NATIVE_AARCH64_BUILD)/CMakeCache.txt) \
		-P runtime/native/tests/check_symbols.cmake
	@echo "needs: $$(aarch64-linux-gnu-objdump -T $(NATIVE_AARCH64_BUILD)/libswiftrt.so | grep -oE 'GLIBC(XX)?_[0-9.]+' | sort -uV | awk -F_ '{v[$$1]=$$0} END {print v["GLIBC"], v["GLIBCXX"]}')"
	@if command -v qemu-aarch64 >/dev/null && test -f $(NATIVE_ENGINES)/seg.onnx; then \
		out=$$(QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 $(NATIVE_AARCH64_BUILD)/hello_swiftrt \
			$(NATIVE_ENGINES)/seg.onnx 2>&1); echo "qemu-aarch64 hello_swiftrt: $$out"; \
		echo "$$out" | grep -q 'built without the OpenVINO backend'; fi

# The wheel's headers, linked at a fixed path so that CUDA_INCLUDE is known before pip runs.
# nvidia-cuda-runtime has cuda_runtime_api.h; the crt/ headers it includes are in nvidia-cuda-crt.
$(CUDA_WHEEL_INCLUDE): $(STAMP)
	$(PY) -m pip install -q --disable-pip-version-check 'nvidia-cuda-runtime>=13,<14' 'nvidia-cuda-crt>=13,<14'
	ln -sfn "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')/nvidia/cu13/include" $@

native-check: $(if $(filter $(CUDA_WHEEL_INCLUDE),$(CUDA_INCLUDE)),$(CUDA_WHEEL_INCLUDE))
	@test -f $(CUDA_INCLUDE)/cuda_runtime_api.h || { echo "no CUDA headers at $(CUDA_INCLUDE): set CUDA_INCLUDE (e.g. the nvidia-cuda-runtime wheel's include/)"; exit 2; }
	@for v in $(TRT_VERSIONS); do \
		echo "TensorRT $$v: compiling runtime/native/src/backend_tensorrt.cpp (-fsyntax-only -Werror -Wall -Wextra)"; \
		$(CXX) -std=c++17 -fsyntax-only -Werror -Wall -Wextra -DSWIFTRT_WITH_TENSORRT \
			-isystem $(TRT_HEADERS)/$$v/include -isystem $(CUDA_INCLUDE) \
			-Iruntime/native/include -Iruntime/native/src runtime/native/src/backend_tensorrt.cpp || exit 1; \
	done
	@echo "core sources with SWIFTRT_WITH_TENSORRT on"; \
	for f in api engine tasks/task tasks/segmentation tasks/outlier tasks/forecast; do $(CXX) -std=c++17 -fsyntax-only -Werror -Wall -Wextra -DSWIFTRT_WITH_TENSORRT \
		-Iruntime/native/include -Iruntime/native/src runtime/native/src/$$f.cpp || exit 1; done
	@if [ -x "$(NVCC)" ]; then \
		echo "device-frame kernel: nvcc -c runtime/native/src/preprocess_cuda.cu (compiled, never run here)"; \
		$(NVCC) -std=c++17 -c -Xcompiler -Wall,-Wextra,-Werror -Iruntime/native/include -Iruntime/native/src \
			runtime/native/src/preprocess_cuda.cu -o /dev/null || exit 1; \
	else echo "no nvcc at $(NVCC): the device-frame kernel was NOT compiled (set NVCC)"; fi

bench: native-lib
	$(PY) benchmarks/run_cpu_benchmarks.py --output BENCHMARKS.md

clean:
	rm -rf $(OUT) engines/*.onnx engines/*.json engines/*.plan
