"""What the bundle configs call to prepare a run: the bundle folder, the cached synthetic data, the tiny text model.

Each preparation happens on first use and is reused afterwards; each writes into a temporary folder and
renames it into place, so an interrupted preparation never leaves a half-written folder that a later run
would take for a finished one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["bundle_root", "cache_dir", "ensure_text_model", "prepare_once"]

logger = logging.getLogger("monai_mlip")


def bundle_root(name: str) -> str:
    """The folder of bundle ``name``: ``bundles/<name>`` under the working directory when run from the repository
    root, else the working directory itself (run from inside the bundle, the model-zoo way)."""
    candidate = Path("bundles") / name
    return str(candidate.resolve() if (candidate / "configs").is_dir() else Path.cwd())


def cache_dir() -> Path:
    """Where generated data is cached: ``$MONAI_MLIP_CACHE``, else ``~/.cache/monai_mlip``."""
    return Path(os.environ.get("MONAI_MLIP_CACHE", Path.home() / ".cache" / "monai_mlip")).expanduser()


def prepare_once(target: str | os.PathLike, build: Callable[[Path], object], what: str) -> str:
    """Run ``build(tmp_dir)`` unless ``target`` exists, then move the result to ``target`` atomically.

    Args:
        target: the finished folder.
        build: writes everything into the temporary folder it is given.
        what: a name for the log.

    Returns:
        ``target`` as a string.
    """
    target = Path(target)
    if target.is_dir():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        logger.info("preparing %s in %s (first use)", what, target)
        build(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(target)


def ensure_text_model(out_dir: str | os.PathLike, corpus: Iterable[str], **kwargs: object) -> str:
    """The tiny preset's text model in ``out_dir``, built from ``corpus`` on first use and reused afterwards.

    Reuse matters: a resumed run and the downstream bundles must see the same tokenizer as the checkpoint.
    ``kwargs`` go to :func:`~monai_mlip.networks.build_tiny_text_model`.
    """
    from monai_mlip.networks import build_tiny_text_model

    return prepare_once(
        out_dir, lambda staging: build_tiny_text_model(corpus, staging, **kwargs), "the tiny text model"
    )
