"""TensorRT version dispatch, in plain Python (``tensorrt`` is never imported here).

Every function takes the ``trt`` module and the engine/context objects as parameters, so
the tests drive them with small fakes. The API table is in the deployment reference:

    I/O and execution   8.0-8.4: bindings    (num_bindings, get_binding_*, execute_async_v2)
                        8.5-8.6: both; we use the tensor API
                        10.x   : tensor API  (num_io_tensors, get_tensor_*, set_tensor_address,
                                              execute_async_v3)

A plan only runs on the TensorRT version and GPU it was built for; ``check_plan`` compares
the plan manifest's ``tensorrt`` block with what is here before anything is deserialized.
"""
import re

from runtime.errors import ManifestError, UserError

BINDING_API = "binding"
TENSOR_API = "tensor"


def parse_version(text):
    """'8.5.2.2' -> (8, 5, 2); '10.3.0' -> (10, 3, 0); missing parts are 0."""
    parts = []
    for piece in str(text).strip().split(".")[:3]:
        match = re.match(r"\d+", piece)
        if not match:
            break
        parts.append(int(match.group(0)))
    if not parts:
        raise ValueError("not a TensorRT version: {!r}".format(text))
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def version_string(version):
    """(8, 5, 2) or '8.5.2.2' -> '8.5.2'."""
    if not isinstance(version, tuple):
        version = parse_version(version)
    return "{}.{}.{}".format(*version)


def io_api(version):
    """Which I/O API to use: BINDING_API before 8.5, TENSOR_API from 8.5 (and only it on 10.x)."""
    if not isinstance(version, tuple):
        version = parse_version(version)
    return TENSOR_API if version[:2] >= (8, 5) else BINDING_API


def list_io(trt, engine, api):
    """All engine I/O tensors in engine order: [(name, is_input, shape tuple, numpy dtype)].

    The order is the binding index order, which is also the order of the pointer list
    ``execute_async_v2`` takes.
    """
    import numpy as np
    io = []
    if api == BINDING_API:
        for i in range(engine.num_bindings):
            io.append((engine.get_binding_name(i), bool(engine.binding_is_input(i)),
                       tuple(int(d) for d in engine.get_binding_shape(i)),
                       np.dtype(trt.nptype(engine.get_binding_dtype(i)))))
    else:
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            io.append((name, engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                       tuple(int(d) for d in engine.get_tensor_shape(name)),
                       np.dtype(trt.nptype(engine.get_tensor_dtype(name)))))
    dynamic = [name for name, _, shape, _ in io if any(d < 0 for d in shape)]
    if dynamic:
        raise UserError("plan has dynamic shapes ({}); this runtime needs a plan built for a "
                        "fixed input size".format(", ".join(dynamic)))
    return io


def bind_and_execute(api, context, names, pointers, stream_handle):
    """Enqueue one inference on the stream (asynchronous: synchronize the stream after).

    ``names`` and ``pointers`` (device addresses as ints) are in ``list_io`` order.
    """
    if api == BINDING_API:
        ok = context.execute_async_v2(bindings=[int(p) for p in pointers],
                                      stream_handle=stream_handle)
    else:
        for name, pointer in zip(names, pointers):
            context.set_tensor_address(name, int(pointer))
        ok = context.execute_async_v3(stream_handle=stream_handle)
    if not ok:
        raise RuntimeError("TensorRT could not enqueue the inference (see its log above)")


def compute_capability(value):
    """'7.2', (7, 2), [7, 2], 72 or 'sm_72' -> '7.2'; None stays None."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        return "{}.{}".format(int(value[0]), int(value[1]))
    if isinstance(value, int):
        return "{}.{}".format(value // 10, value % 10)
    text = str(value).strip().lower().replace("sm_", "").replace("sm", "").strip()
    if text.isdigit():  # 'sm_87' / '87'
        return compute_capability(int(text))
    return text


def _same_gpu(a, b):
    return " ".join(str(a).lower().split()) == " ".join(str(b).lower().split())


def plan_mismatch(block, version, gpu_name, capability):
    """Why a plan described by ``block`` (the manifest's ``tensorrt``) cannot run here, or None.

    ``version`` is the installed TensorRT, ``gpu_name``/``capability`` the current GPU. Fields
    the manifest leaves empty are not compared (the GPU is unknown when the plan was built
    without pycuda); the TensorRT version is always required.
    """
    built_version = block.get("version")
    if not built_version:
        return "its manifest does not say which TensorRT built it"
    built_gpu = block.get("gpu")
    built_cc = compute_capability(block.get("compute_capability"))
    here_cc = compute_capability(capability)
    same = parse_version(built_version) == parse_version(version)
    if built_cc is not None and here_cc is not None and built_cc != here_cc:
        same = False
    if built_gpu and gpu_name and not _same_gpu(built_gpu, gpu_name):
        same = False
    if same:
        return None
    return "plan was built with TensorRT {} for {} (sm {}); this is TensorRT {} on {} (sm {})".format(
        version_string(built_version), built_gpu or "an unrecorded GPU", built_cc or "?",
        version_string(version), gpu_name, here_cc)


def check_plan(block, path, version, gpu_name, capability):
    """Raise ManifestError when the plan whose manifest has this ``tensorrt`` block (None when
    it has none) was built for another TensorRT or GPU."""
    if not isinstance(block, dict):
        raise ManifestError("{}: the manifest of a TensorRT plan needs a 'tensorrt' block "
                            "(version, gpu, compute_capability): rebuild the plan with rt-export"
                            .format(path))
    problem = plan_mismatch(block, version, gpu_name, capability)
    if problem:
        raise ManifestError("{}: {}: rebuild it here from the ONNX model with rt-export "
                            "(TensorRT plans only run on the TensorRT version and GPU they were "
                            "built with)".format(path, problem))
