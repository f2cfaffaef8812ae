"""Offline resolution of pretrained weights: local paths and the local Hugging Face / timm cache only.

Nothing in this package downloads weights at run time. A pretrained source is either a local path
(a Hugging Face model directory with ``config.json``, or a weights file for timm) or a hub name
already in the local cache (``HF_HOME``, populated once on a machine with network access, for example
with ``hf download emilyalsentzer/Bio_ClinicalBERT``). Anything else raises
:class:`PretrainedNotFoundError` saying what to pass.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from monai_mlip.errors import PretrainedNotFoundError

__all__ = ["load_tokenizer", "resolve_hf_source", "resolve_timm_weights"]

_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def _hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def resolve_hf_source(name_or_path: str | os.PathLike, what: str = "model") -> str:
    """Return a directory or a cached hub name that ``from_pretrained(..., local_files_only=True)`` can load.

    Args:
        name_or_path: a local directory with ``config.json`` (and the tokenizer files for a tokenizer), or a
            hub name such as ``emilyalsentzer/Bio_ClinicalBERT`` that is in the local cache.
        what: ``model`` or ``tokenizer``, for the error message.

    Raises:
        PretrainedNotFoundError: neither a local directory nor a cached hub name.
    """
    source = str(name_or_path)
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file() and not (path / "tokenizer_config.json").is_file():
            raise PretrainedNotFoundError(
                f"{path} exists but holds no config.json or tokenizer_config.json: pass the directory written by "
                f"`save_pretrained` for the {what}."
            )
        return str(path)
    if path.exists() or source.startswith((".", "/", "~")) or os.sep + os.sep in source:
        raise PretrainedNotFoundError(f"the {what} path {source} is not a directory.")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(source, "config.json"), str) or isinstance(
        try_to_load_from_cache(source, "tokenizer_config.json"), str
    ):
        return source
    raise PretrainedNotFoundError(
        f"the {what} {source!r} is not a local directory and not in the Hugging Face cache ({_hf_cache_dir()}). "
        "This package never downloads weights: download it once where there is network access "
        f"(`hf download {source}`) and copy the cache here (set HF_HOME), or pass a local directory "
        "written by `save_pretrained`."
    )


def load_tokenizer(name_or_path: str | os.PathLike, **kwargs: Any):
    """Load a Hugging Face tokenizer from a local directory or the local cache (never the network)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_hf_source(name_or_path, "tokenizer"), local_files_only=True, **kwargs)


def resolve_timm_weights(model_name: str, weights: str | os.PathLike | bool | None) -> str | None:
    """Find local weights for a timm model.

    Args:
        model_name: a timm model name (``vit_base_patch16_224``), optionally with a pretrained tag.
        weights: ``None``/``False`` for random init; a path to a ``.safetensors``/``.pth``/``.bin`` file;
            or ``True`` to take the model's default pretrained weights from the local timm/HF cache.

    Returns:
        A local file path, or ``None`` for random initialisation.

    Raises:
        PretrainedNotFoundError: the file is missing, or ``True`` was given and the cache has no copy.
    """
    if weights is None or weights is False:
        return None
    if weights is not True:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise PretrainedNotFoundError(f"timm weights file {path} not found for {model_name}.")
        return str(path)
    import timm.models
    from huggingface_hub import try_to_load_from_cache

    try:
        cfg = timm.models.get_pretrained_cfg(model_name)
    except RuntimeError:
        cfg = None
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        for filename in _WEIGHT_FILES:
            cached = try_to_load_from_cache(hub_id, filename)
            if isinstance(cached, str):
                return cached
    where = f"the Hugging Face cache ({_hf_cache_dir()}) under {hub_id}" if hub_id else "timm's pretrained configs"
    raise PretrainedNotFoundError(
        f"no local pretrained weights for timm model {model_name!r} in {where}. This package never downloads "
        "weights: pass a local weights file (for example `vision_weights: /path/model.safetensors`), or copy "
        f"a cache that has {hub_id or model_name} (set HF_HOME), or use random initialisation (weights null)."
    )
