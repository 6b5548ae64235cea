"""Loading and saving checkpoints: the published SwiftNet layouts and our own format.

Recognised inputs:

- ``march2019``: a plain state_dict as published (``swiftnet_ss_cs.pt``,
  ``swiftnet_pyr_cs.pt``); normalization outside the model, 3x3 logits without bias.
- ``dec2019``: a state_dict from the December-2019 reference code, recognised by its
  ``backbone.img_mean`` buffer; normalization inside the model, 1x1 biased logits.
- ``swiftrt``: our own dict ``{'format': 'swiftrt-checkpoint', 'format_version': 1,
  'arch', 'model_kwargs', 'state_dict', 'meta'}`` written by :func:`save_checkpoint`.

State dicts may be wrapped in ``{'state_dict': ...}`` or ``{'model': ...}`` and carry a
DataParallel ``module.`` prefix. Files are read with ``weights_only=True`` (no
arbitrary code from pickles), so our format stores only tensors and plain data.
Everything a user can get wrong ends in one :class:`UserError` line.
"""
import io
import math
import numbers
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

from runtime.errors import UserError
from runtime.manifest import sha256_file  # one place; re-exported (__all__)

from .models import available, base_of, create

__all__ = ["FORMAT", "FORMAT_VERSION", "load_checkpoint", "save_checkpoint", "read_state_dict",
           "detect_layout", "sha256_file"]

FORMAT = "swiftrt-checkpoint"
FORMAT_VERSION = 1
PathLike = Union[str, "os.PathLike[str]"]

# How many missing/unexpected key names an error message shows.
_SHOW_KEYS = 4


def _torch_load(path: Path, trusted: bool) -> Any:
    """torch.load with weights_only=True; failures become one-line UserErrors."""
    if not path.is_file():
        raise UserError("checkpoint not found: {}".format(path))
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise UserError("cannot read checkpoint {}: corrupt or not a PyTorch file ({})".format(
                path, _first_line(e)))
        if not trusted:
            raise UserError(
                "checkpoint {} holds Python objects besides tensors and was refused for safety; "
                "re-save it as a plain state_dict, or load it with trusted=True if you trust "
                "its source".format(path))
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError,
            AttributeError, ImportError, IndexError, TypeError) as e:
        raise UserError("cannot read checkpoint {}: corrupt or not a PyTorch file ({})".format(
            path, _first_line(e)))
    try:
        return torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:  # any failure of an untrusted-format load is the file's fault
        raise UserError("cannot read checkpoint {}: {}".format(path, _first_line(e)))


def _first_line(e: BaseException, limit: int = 120) -> str:
    """Exception type and the start of its message, to keep errors on one line."""
    text = str(e).strip().splitlines()
    text = text[0] if text else ""
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return "{}: {}".format(type(e).__name__, text)


def read_state_dict(obj: Any, path: PathLike = "checkpoint") -> Dict[str, torch.Tensor]:
    """Unwrap ``{'state_dict': ...}`` / ``{'model': ...}`` and strip a ``module.`` prefix."""
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), (Mapping, nn.Module)):
            obj = obj[wrapper]
            break
    if isinstance(obj, nn.Module):  # a pickled model (only with trusted=True)
        obj = obj.state_dict()
    if not isinstance(obj, Mapping) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise UserError("{} is not a state_dict (expected a dict of tensors, got {})".format(
            path, type(obj).__name__))
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)


def detect_layout(state_dict: Mapping[str, torch.Tensor]) -> str:
    """'dec2019' when the normalization buffers are in the state_dict, else 'march2019'."""
    return "dec2019" if "backbone.img_mean" in state_dict else "march2019"


def _layout_kwargs(layout: str, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    if layout != "dec2019":
        return {}
    kwargs: Dict[str, Any] = dict(normalize_in_model=True, logits_kernel=1, logits_bias=True)
    w = state_dict.get("logits.conv.weight")
    if w is not None and w.dim() == 4:  # trust the file over the default 1x1
        kwargs["logits_kernel"] = int(w.shape[-1])
        kwargs["logits_bias"] = "logits.conv.bias" in state_dict
    return kwargs


def _mismatch(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> Dict[str, list]:
    """Missing keys, unexpected keys and shape mismatches ('key [file] vs [model]')."""
    expected = model.state_dict()
    return {
        "missing": [k for k in expected if k not in state_dict],
        "unexpected": [k for k in state_dict if k not in expected],
        "shape mismatch (file vs model)": [
            "{} {} vs {}".format(k, list(state_dict[k].shape), list(v.shape))
            for k, v in expected.items() if k in state_dict and state_dict[k].shape != v.shape],
    }


def _summarize(keys: list) -> str:
    """The first few keys, one per module, so the message names distinct places."""
    shown, modules = [], set()
    for k in keys:
        module = k.split(" ")[0].rsplit(".", 1)[0]
        if module not in modules:
            modules.add(module)
            shown.append(k)
        if len(shown) == _SHOW_KEYS:
            break
    rest = len(keys) - len(shown)
    return ", ".join(shown) + (", ... (+{} more)".format(rest) if rest else "")


def _matching_arch(state_dict: Mapping[str, torch.Tensor], kwargs: Dict[str, Any], skip: str) -> Optional[str]:
    """Another registered architecture this state_dict fits, for a helpful error."""
    for name in available():
        if name == skip:
            continue
        try:
            problems = _mismatch(create(name, **kwargs), state_dict)
        except Exception:  # an architecture that cannot take these kwargs just does not match
            continue
        if not any(problems.values()):
            return name
    return None


def _new_head_keys(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list:
    """Keys of the model's ``new_heads`` when the file has none of them (a base checkpoint)."""
    prefixes = tuple(h + "." for h in getattr(model, "new_heads", ()))
    if not prefixes or any(k.startswith(prefixes) for k in state_dict):
        return []
    return [k for k in model.state_dict() if k.startswith(prefixes)]


def _load_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], arch: str,
                 layout: str, path: PathLike, kwargs: Dict[str, Any],
                 allow_new_heads: bool = False) -> list:
    """load_state_dict(strict=True), but mismatches reported in one line.

    ``allow_new_heads``: a file without any key of the model's ``new_heads`` (a checkpoint
    of its base architecture) loads, and those heads keep their fresh initialisation.
    Returns the names of the heads left fresh ([] for a complete load).
    """
    fresh = _new_head_keys(model, state_dict) if allow_new_heads else []
    problems = _mismatch(model, state_dict)
    problems["missing"] = [k for k in problems["missing"] if k not in fresh]
    if any(problems.values()):
        parts = ["{} {}: {}".format(len(keys), what, _summarize(keys))
                 for what, keys in problems.items() if keys]
        other = _matching_arch(state_dict, kwargs, arch)
        if other:
            parts.append("it fits arch {!r} instead".format(other))
        raise UserError("checkpoint {} does not match arch {!r} ({} layout): {}".format(
            path, arch, layout, "; ".join(parts)))
    # Cast in case the file stores fp16 (our half=True) or fp64; buffers keep their dtype.
    expected = model.state_dict()
    for k, v in state_dict.items():
        if expected[k].is_floating_point() and not v.is_floating_point():
            raise UserError("checkpoint {}: {} is stored as {}, not a floating-point type: the "
                            "file is not a trained model (refusing to cast it)".format(path, k, v.dtype))
    state_dict = {k: v.to(expected[k].dtype) for k, v in state_dict.items()}
    for k in fresh:
        state_dict[k] = expected[k]
    model.load_state_dict(state_dict, strict=True)
    return sorted(set(k.split(".", 1)[0] for k in fresh))


def _check_normalization(norm: Any, path: PathLike) -> Dict[str, Any]:
    try:
        out = dict(scale=float(norm["scale"]), mean=[float(v) for v in norm["mean"]],
                   std=[float(v) for v in norm["std"]])
    except (KeyError, TypeError, ValueError):
        raise UserError("{}: meta.normalization must be a dict with scale, mean[3], std[3]".format(path))
    if len(out["mean"]) != 3 or len(out["std"]) != 3:
        raise UserError("{}: meta.normalization must have 3 means and 3 stds".format(path))
    return out


def load_checkpoint(arch: str, path: PathLike, num_classes: Optional[int] = None,
                    trusted: bool = False) -> Tuple[nn.Module, Dict[str, Any]]:
    """Build ``arch`` and load ``path`` into it strictly; return (model in eval mode, info).

    ``num_classes`` defaults to 19 for the published layouts; our format records its own
    and passing a different one is an error. ``info`` has ``layout``, ``sha256``,
    ``classes``, ``normalization`` (the model's), ``input_size``, ``metadata`` and
    ``new_head`` / ``new_heads``: an architecture that extends another (``base_of``, e.g.
    ``swiftnet-rn18-ood``) also loads the other's checkpoints (published layouts or ours)
    and then reports its extra heads as freshly initialised; its own files load strictly.
    ``trusted=True`` allows files that need full unpickling (never needed for the
    published weights or our format).
    """
    path = Path(path)
    obj = _torch_load(path, trusted)
    meta: Dict[str, Any] = {}
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        layout = "swiftrt"
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise UserError("{}: {} format_version {!r} is not supported (this code reads {})".format(
                path, FORMAT, version, FORMAT_VERSION))
        from_base = obj.get("arch") is not None and obj.get("arch") == base_of(arch)
        if obj.get("arch") != arch and not from_base:
            raise UserError("checkpoint {} is for arch {!r}, not {!r}".format(path, obj.get("arch"), arch))
        kwargs = dict(obj.get("model_kwargs") or {})
        saved_classes = kwargs.pop("num_classes", 19)
        if num_classes is not None and num_classes != saved_classes:
            raise UserError("checkpoint {} has {} classes, not {}".format(path, saved_classes, num_classes))
        meta = dict(obj.get("meta") or {})
        state_dict = read_state_dict(obj.get("state_dict"), path)
        kwargs["num_classes"] = saved_classes
        try:
            model = create(arch, **kwargs)
        except TypeError as e:
            raise UserError("checkpoint {}: model_kwargs {} do not fit arch {!r} ({})".format(
                path, kwargs, arch, _first_line(e)))
        if meta.get("normalization") is not None:
            model.normalization = _check_normalization(meta["normalization"], path)
    else:
        state_dict = read_state_dict(obj, path)
        layout = detect_layout(state_dict)
        from_base = True  # a plain state_dict of the base arch (e.g. published swiftnet-rn18)
        kwargs = _layout_kwargs(layout, state_dict)
        kwargs["num_classes"] = 19 if num_classes is None else num_classes
        model = create(arch, **kwargs)
    from_base = from_base and base_of(arch) is not None
    dropped = []
    extra = tuple(getattr(model, "base_extra_prefixes", ())) if from_base else ()
    if extra:  # keys of the base arch this one has no place for (e.g. skip bottlenecks)
        dropped = sorted(k for k in state_dict if k.startswith(extra))
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(extra)}
    _refuse_non_finite(state_dict, path)
    fresh = _load_strict(model, state_dict, arch, layout, path, kwargs, allow_new_heads=from_base)
    model.eval()
    info = dict(
        new_head=bool(fresh),
        new_heads=fresh,
        dropped_keys=dropped,
        layout=layout,
        sha256=sha256_file(path),
        classes=meta.get("classes"),
        normalization=dict(getattr(model, "normalization", None) or {}),
        input_size=meta.get("input_size"),
        metadata=meta,
    )
    return model, info


def _refuse_non_finite(state_dict: Mapping[str, Any], path: Path) -> None:
    """A checkpoint with NaN/Inf weights is refused in one line (it would export noise that the
    parity gate cannot tell from a model, and training would continue from it)."""
    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise UserError("checkpoint {}: {} has {} NaN/Inf value(s): the file is broken (a "
                                "diverged training run?)".format(path, name, bad))


def refuse_diverged(loss: torch.Tensor, step: int, output: PathLike) -> None:
    """Stop at a NaN/Inf loss in one line (the weights are about to become NaN); ``output``
    keeps the last checkpoint saved before, if any."""
    if not math.isfinite(float(loss.detach())):
        kept = ("{} keeps the last good checkpoint".format(output) if os.path.exists(str(output))
                else "no checkpoint was written")
        raise UserError("training diverged at step {} (loss {}): stopped; {} (lower --lr?)".format(
            step, float(loss.detach()), kept))


def _plain(value: Any, where: str = "meta") -> Any:
    """Convert to data ``torch.load(weights_only=True)`` accepts (tuples -> lists, numpy -> Python)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v, "{}[{}]".format(where, i)) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError("{}: keys must be str, got {!r}".format(where, k))
            out[k] = _plain(v, "{}.{}".format(where, k))
        return out
    raise TypeError("{}: {} cannot be stored in a weights-only checkpoint".format(where, type(value).__name__))


def save_checkpoint(path: PathLike, model: nn.Module, arch: str, meta: Optional[Mapping[str, Any]] = None,
                    model_kwargs: Optional[Mapping[str, Any]] = None, half: bool = False) -> str:
    """Write our format atomically and return its sha256.

    ``meta`` holds classes, normalization, input_size, ignore_id, metrics, ... (plain data
    only). ``model_kwargs`` default to those ``create`` recorded on the model.
    ``half=True`` stores float tensors as fp16 (small committed demo checkpoints);
    loading casts them back to float32.
    """
    model_arch = getattr(model, "arch", arch)
    if model_arch != arch:
        raise UserError("model is a {!r}, not a {!r}".format(model_arch, arch))
    if model_kwargs is None:
        model_kwargs = getattr(model, "model_kwargs", None) or {}
    meta = dict(meta or {})
    meta.setdefault("normalization", dict(getattr(model, "normalization", {})) or None)
    state_dict = {}
    for k, v in model.state_dict().items():
        v = v.detach().cpu()
        if half and v.is_floating_point():
            v = v.half()
        state_dict[k] = v.clone()
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "model_kwargs": _plain(dict(model_kwargs), "model_kwargs"),
        "state_dict": state_dict,
        "meta": _plain(meta, "meta"),
    }
    check_trained_state(model.state_dict(), path)
    from runtime.jsonfile import write_bytes_atomic
    # Serialized in memory, then written beside and renamed (runtime.jsonfile): torch.save's
    # own writer turns a full disk into a RuntimeError and leaves half a file.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    write_bytes_atomic(str(path), buffer.getbuffer())
    return sha256_file(path)


def check_checkpoint_output(output: PathLike, inputs: Mapping[str, Any]) -> str:
    """Refuse, before any training, a checkpoint ``output`` that would destroy something
    (runtime.jsonfile.check_output): one of the run's ``inputs`` ({flag: path or paths}: the
    --init checkpoint, a file inside --data), an engine or manifest, a FIFO, device or folder,
    a /proc path, or a name that is not a .pt/.pth/.ckpt file. Returns the path to write."""
    from runtime.jsonfile import CHECKPOINT_EXTENSIONS, Inputs, check_output
    seen = Inputs()
    for flag, paths in inputs.items():
        for one in ([paths] if isinstance(paths, (str, Path)) or paths is None else paths):
            seen.add(one, flag)
    return check_output(output, "--output", seen, allow=CHECKPOINT_EXTENSIONS,
                        kinds=CHECKPOINT_EXTENSIONS)


def check_trained_state(state_dict: Mapping[str, Any], path: PathLike) -> None:
    """A trained model is saved only if every floating-point tensor is finite (``--lr 1e308``
    turns weights into Inf/NaN while the loss of that step still looked fine)."""
    for name, value in state_dict.items():
        if torch.is_tensor(value) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise UserError("{}: not written: {} has {} NaN/Inf value(s) after training (the "
                                "run diverged: lower --lr)".format(path, name, bad))
