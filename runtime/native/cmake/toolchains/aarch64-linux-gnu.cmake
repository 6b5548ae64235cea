# Cross-building libswiftrt for a Jetson (aarch64 Linux) on an x86-64 machine (docs/native.md).
#
# The backend-less core (manifest reader, preprocessing, the ABI; engines fail to open with
# SRT_ERROR_UNSUPPORTED), with Debian/Ubuntu's g++-aarch64-linux-gnu:
#   cmake -S runtime/native -B build/aarch64 -G Ninja \
#     -DCMAKE_TOOLCHAIN_FILE=runtime/native/cmake/toolchains/aarch64-linux-gnu.cmake \
#     -DSWIFTRT_WITH_OPENVINO=OFF -DSWIFTRT_BUILD_TESTS=OFF
# With TensorRT: also -DSWIFTRT_WITH_TENSORRT=ON -DJETPACK_SYSROOT=<a JetPack root filesystem> (a
# Jetson's / copied, or the L4T sample rootfs with the cuda-cudart-dev and libnvinfer-dev packages):
# headers and libraries are then taken from there only (usr/include/aarch64-linux-gnu/NvInfer.h,
# usr/lib/aarch64-linux-gnu/libnvinfer.so, usr/local/cuda) and glibc from there too.
# The compiler decides which userland the library runs on (its glibc and libstdc++ are the minimum):
# with Debian 12's g++-aarch64-linux-gnu (gcc 12) the core needs GLIBC_2.33 and GLIBCXX_3.4.29
# (make native-aarch64 prints them): JetPack 6 (Ubuntu 22.04) has both, JetPack 5 (Ubuntu 20.04,
# glibc 2.31, gcc 9) does not. For JetPack 5 use the cross toolchain NVIDIA gives for that Jetson
# Linux release (SWIFTRT_CROSS_PREFIX=<its bin>/aarch64-buildroot-linux-gnu-) or build on the Jetson.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(SWIFTRT_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the cross tools (gcc, g++, objdump)")
set(CMAKE_C_COMPILER ${SWIFTRT_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${SWIFTRT_CROSS_PREFIX}g++)

set(JETPACK_SYSROOT "" CACHE PATH "A JetPack root filesystem to build against (TensorRT, CUDA, glibc)")
if(JETPACK_SYSROOT)
  set(CMAKE_SYSROOT ${JETPACK_SYSROOT})
  set(CMAKE_FIND_ROOT_PATH ${JETPACK_SYSROOT})
  set(TENSORRT_ROOT ${JETPACK_SYSROOT}/usr CACHE PATH "TensorRT in the JetPack sysroot")
  set(CUDAToolkit_ROOT ${JETPACK_SYSROOT}/usr/local/cuda CACHE PATH "CUDA in the JetPack sysroot")
endif()
# Programs (the code generators CMake runs) from the build machine; headers and libraries only from
# the target's root.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
