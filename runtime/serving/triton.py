"""A Triton Inference Server model repository for a swiftrt engine (``rt-triton ENGINE DIR``).

Two models, both described by the engine's manifest (runtime.manifest.Manifest):

- ``NAME`` (Triton's Python backend, every engine): runs the swiftrt engine itself through
  runtime.open_engine, so preprocessing, outlier scores and forecasts are the manifest's and
  the runtime's, exactly as rt-segment computes them. In: ``FRAME``, uint8 BGR frames of any
  size ([batch, H, W, 3]; OpenCV's order, the order rt-segment reads). Out: the class map
  (uint8, [batch, h, w] at the network resolution) named after the manifest's class-map
  output, the outlier score (float32) under the manifest's outlier output name for outlier
  engines, and for forecast bundles ``forecast`` (the class map at t + horizon; empty,
  [1, 0, 0], while the forecaster warms up), one stream per Triton sequence (correlation id).
- ``NAME_plan`` (TensorRT plans only): Triton's own ``tensorrt_plan`` backend on the plan, with
  the manifest's tensor names, dtypes and shapes. It runs the network only: the client fits
  frames to the input size (the manifest's ``resize``) and, for a ``frame`` input, sends them
  as uint8 NHWC in the manifest's colour order (normalization is in the graph); argmax of
  logits and outlier thresholds are then the client's (see docs/serving.md).

The repository is self-contained: the engine files are copied into the model's version folder
and their sha256 is checked against the manifest when Triton loads the model.
"""
import json
import os
import shutil

from runtime import manifest as manifest_mod
from runtime.errors import UserError
from runtime.jsonfile import OutputError, write_text_atomic
from runtime.manifest import Manifest

FRAME_INPUT = "FRAME"            # uint8 BGR frames, [batch, H, W, 3]
FRAME_TIME_INPUT = "FRAME_TIME"  # forecasts: the frame's time in s (float64, optional)
FORECAST_OUTPUT = "forecast"
ENGINE_FOLDER = "engine"         # inside the version folder: the copied engine files
MODEL_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "triton_model.py")

TRITON_DTYPES = {"uint8": "TYPE_UINT8", "int8": "TYPE_INT8", "float16": "TYPE_FP16",
                 "float32": "TYPE_FP32", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                 "float64": "TYPE_FP64", "bool": "TYPE_BOOL"}
MAX_BATCH = 64
MAX_INSTANCES = 64
SEQUENCE_IDLE_US = 60 * 1000000  # a forecast stream silent this long is dropped


class ServingIO(object):
    """The Python model's tensors, from the manifest: ``inputs`` and ``outputs`` are lists of
    (name, numpy dtype name, dims without the batch dimension); ``class_map`` and
    ``outlier`` are the output names the model fills (``outlier`` None without a score);
    ``stateful``: a forecast bundle (one stream per sequence)."""

    def __init__(self, manifest):
        height, width = manifest.input.size
        self.stateful = manifest.task == "forecast"
        self.inputs = [(FRAME_INPUT, "uint8", [-1, -1, 3])]
        if self.stateful:
            self.inputs.append((FRAME_TIME_INPUT, "float64", [1]))
            self.class_map = FORECAST_OUTPUT
            dims = [-1, -1]  # empty while warming up
        else:
            named = manifest.output("class_map")  # a logits export: argmaxed, named class_map
            self.class_map = named.name if named is not None else "class_map"
            dims = [height, width]
        self.outputs = [(self.class_map, "uint8", dims)]
        score = manifest.output("outlier_score")
        self.outlier = score.name if score is not None else None
        if self.outlier is not None:
            self.outputs.append((self.outlier, "float32", [height, width]))


def model_name(engine_path, manifest):
    """A Triton model name from the artifact's file name (a bundle: its folder's name)."""
    artifact = manifest_mod.resolve(engine_path)[0]
    if manifest.task == "forecast":
        artifact = bundle_folder(engine_path)
    base = os.path.basename(os.path.normpath(artifact))
    for ext in (".onnx", ".plan", ".engine"):
        if base.endswith(ext):
            base = base[:-len(ext)]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in base) or "swiftrt"


def bundle_folder(engine_path):
    """The folder of a forecast bundle given as its folder or its forecast.json."""
    return os.path.dirname(manifest_mod.resolve(engine_path)[1])


def _tensor_block(name, dtype, dims, extra=""):
    return '  {{\n    name: "{}"\n    data_type: {}\n    dims: [ {} ]{}\n  }}'.format(
        name, TRITON_DTYPES[dtype], ", ".join(str(int(d)) for d in dims), extra)


def _parameters(params):
    return "".join('parameters {{\n  key: "{}"\n  value: {{ string_value: {} }}\n}}\n'.format(
        key, json.dumps(str(value))) for key, value in params if value is not None)


def python_model_config(name, manifest, engine_file, instances=1, max_batch=8, queue_delay_us=200,
                        backend=None, threads=None, python_path=None):
    """config.pbtxt of the Python-backend model (``engine_file``: relative to the version folder).

    Stateless engines get dynamic batching: requests queued while an instance is busy reach it
    in one execute call (one server <-> stub round trip instead of one each); the engine still
    runs frame by frame (its manifest fixes batch 1), so throughput scales with ``instances``
    (processes). Forecast bundles get the sequence batcher instead: one stream (ring buffer of
    past features) per correlation id, its frames in order."""
    io = ServingIO(manifest)
    lines = ['name: "{}"'.format(name), 'backend: "python"']
    if io.stateful:
        lines.append("max_batch_size: 0")
        frame_dims = [1, -1, -1, 3]
    else:
        lines.append("max_batch_size: {}".format(max_batch))
        frame_dims = [-1, -1, 3]
    inputs = [_tensor_block(FRAME_INPUT, "uint8", frame_dims)]
    if io.stateful:
        inputs.append(_tensor_block(FRAME_TIME_INPUT, "float64", [1], "\n    optional: true"))
    outputs = [_tensor_block(n, d, ([1] + dims) if io.stateful else dims) for n, d, dims in io.outputs]
    lines.append("input [\n{}\n]".format(",\n".join(inputs)))
    lines.append("output [\n{}\n]".format(",\n".join(outputs)))
    if io.stateful:
        lines.append(
            "sequence_batching {{\n  max_sequence_idle_microseconds: {}\n  control_input [\n"
            '    {{ name: "START"\n      control [ {{ kind: CONTROL_SEQUENCE_START\n'
            "        int32_false_true: [ 0, 1 ] }} ] }},\n"
            '    {{ name: "END"\n      control [ {{ kind: CONTROL_SEQUENCE_END\n'
            "        int32_false_true: [ 0, 1 ] }} ] }},\n"
            '    {{ name: "CORRID"\n      control [ {{ kind: CONTROL_SEQUENCE_CORRID\n'
            "        data_type: TYPE_UINT64 }} ] }}\n  ]\n  oldest {{ max_candidate_sequences: 64 }}\n}}"
            .format(SEQUENCE_IDLE_US))
    else:
        lines.append("dynamic_batching {{\n  max_queue_delay_microseconds: {}\n}}".format(
            int(queue_delay_us)))
    lines.append("instance_group [\n  {{\n    kind: KIND_CPU\n    count: {}\n  }}\n]".format(instances))
    params = [("engine", engine_file), ("backend", backend), ("threads", threads),
              ("python_path", python_path), ("task", manifest.task),
              ("classes", json.dumps(manifest.class_names))]
    return "\n".join(lines) + "\n" + _parameters(params)


def plan_model_config(name, manifest, max_batch=0):
    """config.pbtxt of the ``tensorrt_plan`` model: the manifest's names, dtypes and shapes.

    The plan's shapes are static (batch 1, the manifest's), so no batch dimension is declared
    (max_batch_size 0) and no dynamic batching: Triton runs one request at a time per
    instance; add instances (or rebuild the plan with a batch profile) to serve more streams."""
    inp = manifest.input
    inputs = [_tensor_block(inp.name, inp.dtype, inp.shape)]
    outputs = [_tensor_block(out.name, out.dtype, out.shape) for out in manifest.outputs]
    lines = ['name: "{}"'.format(name), 'platform: "tensorrt_plan"',
             "max_batch_size: {}".format(max_batch),
             'default_model_filename: "model.plan"',
             "input [\n{}\n]".format(",\n".join(inputs)),
             "output [\n{}\n]".format(",\n".join(outputs)),
             "instance_group [\n  {\n    kind: KIND_GPU\n    count: 1\n  }\n]"]
    params = [("task", manifest.task), ("classes", json.dumps(manifest.class_names)),
              ("resize", inp.resize or "stretch"), ("color_order", inp.color_order)]
    return "\n".join(lines) + "\n" + _parameters(params)


def _check_options(instances, max_batch):
    if not 1 <= int(instances) <= MAX_INSTANCES:
        raise UserError("--instances must be between 1 and {}".format(MAX_INSTANCES))
    if not 1 <= int(max_batch) <= MAX_BATCH:
        raise UserError("--max-batch must be between 1 and {}".format(MAX_BATCH))


def _engine_files(engine_path, manifest):
    """[(source, name in the engine folder)] of the engine and its manifest(s)."""
    if manifest.task == "forecast":
        folder = bundle_folder(engine_path)
        return [(folder, os.path.basename(os.path.normpath(folder)))], manifest_mod.BUNDLE_NAME
    artifact, sidecar = manifest_mod.resolve(engine_path)
    base = os.path.basename(artifact)
    return [(artifact, base), (sidecar, base + ".json")], base


def _stage_model(repo, name):
    """A fresh staging folder for model ``name``; refuses to replace an existing model."""
    final = os.path.join(repo, name)
    if os.path.lexists(final):
        raise OutputError("{} exists: refusing to replace a model (remove it, or give another "
                          "--name)".format(final))
    staging = os.path.join(repo, ".{}.{}.partial".format(name, os.getpid()))
    if os.path.lexists(staging):
        shutil.rmtree(staging)
    os.makedirs(os.path.join(staging, "1"))
    return staging, final


def _publish(staging, final):
    os.rename(staging, final)  # the model appears whole or not at all
    return final


def write_repository(engine_path, repo, name=None, instances=1, max_batch=8, queue_delay_us=200,
                     backend=None, threads=None, python_path=None, verify=True):
    """Write Triton model(s) for ``engine_path`` into the model repository folder ``repo``.

    Returns the model folders written: the Python-backend model, and for a TensorRT plan also
    ``NAME_plan``. ``python_path``: a folder holding the ``runtime`` package, put first on the
    model's sys.path (where swiftrt is not installed in Triton's Python). The engine is loaded
    (manifest validated, sha256 checked unless ``verify`` is False) before anything is written.
    """
    _check_options(instances, max_batch)
    manifest = Manifest.load(engine_path)
    if verify and manifest.task != "forecast":
        manifest.verify_artifact(manifest_mod.resolve(engine_path)[0])
    if manifest.task == "forecast_stage":
        from runtime.result import refuse_forecast_parts
        refuse_forecast_parts(engine_path, manifest)
    name = name or model_name(engine_path, manifest)
    if not name or any(not (c.isalnum() or c in "-_") for c in name):
        raise UserError("model name {!r}: use letters, digits, '-' and '_'".format(name))
    repo = str(repo)
    if os.path.lexists(repo) and not os.path.isdir(repo):
        raise OutputError("{} is not a folder: give a model repository folder".format(repo))
    engine_dir = os.path.dirname(os.path.abspath(manifest_mod.resolve(engine_path)[1]))
    if os.path.abspath(repo) == engine_dir:
        raise OutputError("{} holds the engine: write the repository into another folder".format(repo))
    if not os.path.isdir(repo):
        os.makedirs(repo)
    files, engine_file = _engine_files(engine_path, manifest)
    plan = manifest.artifact_format == "tensorrt"
    if plan and os.path.lexists(os.path.join(repo, name + "_plan")):
        raise OutputError("{} exists: refusing to replace a model".format(
            os.path.join(repo, name + "_plan")))
    written = []
    staging, final = _stage_model(repo, name)
    try:
        target = os.path.join(staging, "1", ENGINE_FOLDER)
        os.makedirs(target)
        for source, base in files:
            if os.path.isdir(source):
                shutil.copytree(source, os.path.join(target, base))
            else:
                shutil.copy2(source, os.path.join(target, base))
        if manifest.task == "forecast":
            engine_file = os.path.join(files[0][1], engine_file)
        shutil.copy2(MODEL_FILE, os.path.join(staging, "1", "model.py"))
        write_text_atomic(os.path.join(staging, "config.pbtxt"), python_model_config(
            name, manifest, os.path.join(ENGINE_FOLDER, engine_file), instances=instances,
            max_batch=max_batch, queue_delay_us=queue_delay_us, backend=backend,
            threads=threads, python_path=python_path))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written.append(_publish(staging, final))
    if plan:
        staging, final = _stage_model(repo, name + "_plan")
        try:
            shutil.copy2(manifest_mod.resolve(engine_path)[0],
                         os.path.join(staging, "1", "model.plan"))
            write_text_atomic(os.path.join(staging, "config.pbtxt"),
                              plan_model_config(name + "_plan", manifest))
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        written.append(_publish(staging, final))
    return written
