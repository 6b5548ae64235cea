"""Export the engines the native core's C tests and parity tests run: real rt-export code paths.

    python runtime/native/tests/make_engines.py OUT_DIR [--size 128x256] [--only seg,logits,ood,bundle]

Writes OUT_DIR/seg.onnx (uint8 BGR frame in, class map out), OUT_DIR/logits.onnx (float NCHW
tensor normalized on the host, logits out), OUT_DIR/ood.onnx (outlier head: class map + outlier
score) and OUT_DIR/bundle/ (a DeformF2F forecast bundle), from the committed demo checkpoints,
OUT_DIR/int8.onnx (seg.onnx quantized by rt-export's INT8 path on generated scenes, fixed seed;
only with --only int8) and OUT_DIR/bad/: broken engines and manifests for the error tests.
Exports are kept while OUT_DIR/stamp.json matches the export code, the checkpoints and the size
(re-exported when any of them changes), so the ctest fixture and the pytest session share one folder
without testing stale engines.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from runtime.sizes import parse_hw  # noqa: E402

CHECKPOINTS = {
    "seg": ("swiftnet-rn18", "checkpoints/swiftnet-rn18_synthetic.pt", {}),
    "logits": ("swiftnet-rn18", "checkpoints/swiftnet-rn18_synthetic.pt",
               {"input_format": "tensor", "output_kind": "logits"}),
    "ood": ("swiftnet-rn18-ood", "checkpoints/swiftnet-rn18-ood_synthetic.pt", {}),
}
BUNDLE_CHECKPOINT = "checkpoints/f2f-8-short_synthetic.pt"
# Exports for a TensorRT target change the graph's I/O form (8.2: float32 frame in, int32 class map
# out; 10.x: uint8 ArgMax out), where rt-export has --trt-version.
TRT_TARGETS = {"trt82": "8.2.1", "trt103": "10.3.0"}


def _stamp(size):
    """What the exports depend on: the export and calibration code, the checkpoints, the size."""
    digest = hashlib.sha256()
    files = [os.path.join(REPO, c) for _, c, _ in CHECKPOINTS.values()]
    files.append(os.path.join(REPO, BUNDLE_CHECKPOINT))
    for folder in ("export", "calib"):
        for root, _, names in sorted(os.walk(os.path.join(REPO, folder))):
            files.extend(os.path.join(root, n) for n in sorted(names) if n.endswith(".py"))
    files.append(os.path.join(REPO, "runtime", "manifest.py"))  # the manifest writer (its digest)
    files.append(os.path.abspath(__file__))
    for path in sorted(set(files)):
        digest.update(os.path.relpath(path, REPO).encode())
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return {"code_and_checkpoints": digest.hexdigest(), "size": list(size)}


def make(out, size, only):
    """Export what is missing (everything when the stamp changed); returns {kind: path}."""
    from export.api import export
    os.makedirs(out, exist_ok=True)
    stamp_path = os.path.join(out, "stamp.json")
    stamp = _stamp(size)
    try:
        with open(stamp_path) as handle:
            current = json.load(handle) == stamp
    except (OSError, ValueError):
        current = False
    if not current:
        for name in os.listdir(out):
            path = os.path.join(out, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    paths = {}
    for kind, (arch, checkpoint, kwargs) in sorted(CHECKPOINTS.items()):
        path = os.path.join(out, kind + ".onnx")
        paths[kind] = path
        if kind in only and not os.path.exists(path + ".json"):
            export(arch, os.path.join(REPO, checkpoint), size, path, parity_images=2,
                   log=lambda message: None, **kwargs)
    if "int8" in only:
        paths["int8"] = os.path.join(out, "int8.onnx")
        if not os.path.exists(paths["int8"] + ".json"):
            from calib.int8 import Int8Options, export_int8
            if not os.path.exists(paths["seg"] + ".json"):
                arch, checkpoint, kwargs = CHECKPOINTS["seg"]
                export(arch, os.path.join(REPO, checkpoint), size, paths["seg"], parity_images=2,
                       log=lambda message: None, **kwargs)
            export_int8(paths["seg"], paths["int8"], "synthetic", Int8Options(count=8, seed=0,
                        method="minmax", agreement_images=2, check_latency=False, progress=False,
                        log=lambda message: None))
    import inspect
    has_targets = "trt_version" in inspect.signature(export).parameters
    for kind, version in sorted(TRT_TARGETS.items()):
        path = os.path.join(out, kind + ".onnx")
        if has_targets:
            paths[kind] = path
            if kind in only and not os.path.exists(path + ".json"):
                arch, checkpoint, _ = CHECKPOINTS["seg"]
                export(arch, os.path.join(REPO, checkpoint), size, path, parity_images=2,
                       trt_version=version, log=lambda message: None)
    bundle = os.path.join(out, "bundle")
    paths["bundle"] = bundle
    if "bundle" in only and not os.path.exists(os.path.join(bundle, "forecast.json")):
        from export.forecast_export import BundleOptions, export_bundle
        export_bundle(os.path.join(REPO, BUNDLE_CHECKPOINT), bundle, BundleOptions(size=size,
                      parity_frames=6, log=lambda message: None))
    if "bad" in only:
        make_bad(os.path.join(out, "bad"), paths["seg"])
    if "frames" in only:
        make_frames(os.path.join(out, "frames"))
    paths["frames"] = os.path.join(out, "frames")
    paths["bad"] = os.path.join(out, "bad")
    with open(stamp_path, "w") as handle:
        json.dump(stamp, handle)
    return paths


def _link(src, dst):
    """A hard link (the engines are large), a copy where links are not possible."""
    if os.path.exists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def make_frames(folder, count=6):
    """Generated road scenes for the C example: binary PPM (RGB) files and one raw BGR file."""
    from export.scenes import render_scene
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        bgr = render_scene(41, i, size=(360, 640))[0]
        with open(os.path.join(folder, "scene_{:02d}.ppm".format(i)), "wb") as handle:
            handle.write(b"P6\n640 360\n255\n")
            handle.write(bgr[:, :, ::-1].tobytes())
    with open(os.path.join(folder, "raw_640x360.bgr"), "wb") as handle:
        handle.write(render_scene(42, 0, size=(360, 640))[0].tobytes())


def make_bad(folder, seg):
    """Engines and manifests a caller can get wrong, each broken in one way. Manifests are sealed
    (runtime.manifest.dump_manifest) unless the damage is to the seal itself, so each is refused
    for what is wrong with it."""
    from runtime.manifest import DIGEST_KEY, dump_manifest
    os.makedirs(folder, exist_ok=True)
    with open(seg + ".json") as handle:
        good = json.load(handle)

    def write(name, manifest=None, text=None, artifact=None):
        path = os.path.join(folder, name)
        if artifact is None:
            _link(seg, path)
        else:
            with open(path, "wb") as handle:
                handle.write(artifact)
        if manifest is not None or text is not None:
            with open(path + ".json", "w") as handle:
                handle.write(text if text is not None else dump_manifest(manifest))

    write("no_manifest.onnx")
    write("schema2.onnx", dict(good, schema_version=2))
    write("badjson.onnx", text='{"schema_version": 1, "task": ')
    write("nofield.onnx", dict((k, v) for k, v in good.items() if k != "outputs"))
    write("wrongname.onnx", dict(good, input=dict(good["input"], name="not_the_input")))
    write("emptyinput.onnx", dict(good, input=dict(good["input"], name="")))
    write("emptyoutput.onnx", dict(good, outputs=[dict(good["outputs"][0], name="")] + good["outputs"][1:]))
    write("noscore.onnx", dict(good, task="outlier"))  # an outlier model's task without its score output
    with open(seg, "rb") as handle:
        data = handle.read()
    write("truncated.onnx", good, artifact=data[:len(data) // 2])
    garbage = os.urandom(4096)
    write("garbage.onnx", dict(good, artifact=dict(good["artifact"],
                                                    sha256=hashlib.sha256(garbage).hexdigest())),
          artifact=garbage)
    # The manifest's own digest: edited after sealing (a colour order flipped), no digest at all
    # (a legacy manifest: opens only with allow_legacy), and no artifact sha256 (likewise).
    sealed = dump_manifest(good)
    flipped = "RGB" if good["input"]["color_order"] == "BGR" else "BGR"
    write("edited.onnx", text=sealed.replace('"color_order": "{}"'.format(good["input"]["color_order"]),
                                             '"color_order": "{}"'.format(flipped)))
    legacy = dict((k, v) for k, v in good.items() if k != DIGEST_KEY)
    write("legacy.onnx", text=json.dumps(legacy, indent=2))
    write("nosha.onnx", dict(good, artifact=dict((k, v) for k, v in good["artifact"].items()
                                                 if k != "sha256")))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--size", default="128x256")
    parser.add_argument("--only", default="seg,logits,ood,bundle,bad,frames")
    args = parser.parse_args(argv)
    size = parse_hw(args.size)
    for kind, path in sorted(make(args.out, size, set(args.only.split(","))).items()):
        print(kind, path)


if __name__ == "__main__":
    main()
