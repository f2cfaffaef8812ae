"""monai_mlip: MLIP (Medical Language-Image Pre-training with Masked Local Representation Learning) for MONAI.

Subpackages load on first access (``monai_mlip.networks``...), so ``import monai_mlip`` is cheap and bundle
configs can name any of them after a single ``$import monai_mlip``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__version__ = "0.1.0"

_SUBMODULES = ("bundle", "data", "downstream", "engines", "errors", "handlers", "hub", "losses", "networks", "optim")

__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str) -> ModuleType:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
