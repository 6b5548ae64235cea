"""Model registry: architectures by name, timm-style.

Architectures register a factory with ``@register("name")``; everything else (CLI,
checkpoint loading, export) builds models with ``create(name, ...)`` so that a name in
a checkpoint or manifest is all that is needed to rebuild the network.
"""
from typing import Callable, Dict, List, Optional

from torch import nn

from runtime.errors import UserError

__all__ = ["register", "create", "available", "base_of"]

_REGISTRY: Dict[str, Callable[..., nn.Module]] = {}
_BASES: Dict[str, Optional[str]] = {}


def register(name: str, base: Optional[str] = None) -> Callable:
    """Decorator registering ``fn(num_classes=..., **kwargs) -> nn.Module`` as ``name``.

    ``base``: an architecture whose checkpoints this one loads, with the extra heads it
    adds (the model's ``new_heads``) freshly initialised (e.g. an outlier head on
    ``swiftnet-rn18``).
    """

    def decorator(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not fn:
            raise ValueError("model {!r} is already registered".format(name))
        _REGISTRY[name] = fn
        _BASES[name] = base
        return fn

    return decorator


def base_of(name: str) -> Optional[str]:
    """The architecture ``name`` extends (loads the checkpoints of), or None."""
    return _BASES.get(name)


def available() -> List[str]:
    """Registered architecture names, sorted."""
    return sorted(_REGISTRY)


def create(name: str, num_classes: int = 19, **kwargs) -> nn.Module:
    """Build architecture ``name``; unknown names are a UserError listing the known ones.

    The model remembers ``arch`` and its constructor ``model_kwargs`` so a checkpoint
    can record how to rebuild it.
    """
    if name not in _REGISTRY:
        raise UserError("unknown model {!r}; available: {}".format(name, ", ".join(available())))
    model = _REGISTRY[name](num_classes=num_classes, **kwargs)
    model.arch = name
    model.model_kwargs = dict(num_classes=num_classes, **kwargs)
    return model


# Architectures register themselves on import; keep these imports below the registry.
from . import swiftnet  # noqa: E402,F401
from . import forecast  # noqa: E402,F401
