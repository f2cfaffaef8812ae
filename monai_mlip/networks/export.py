"""Sharing the image encoder: the vision tower in timm's Hugging Face layout, and back.

:func:`save_encoder` writes ``model.safetensors`` and ``config.json`` with timm's own ``save_for_hf``: the
architecture, the arguments that rebuild it and a ``pretrained_cfg`` that tells the truth (channels, input
size, mean, std; :attr:`VisionTower.normalization`), plus a ``README.md`` model card when one is given. The
folder is written under a temporary name and renamed into place, so a reader never sees half of it.
:func:`load_encoder` rebuilds the tower from it; no text tower, tokenizer or pre-training config is needed::

    from monai_mlip.networks import load_encoder
    encoder = load_encoder("bundles/mlip_pretrain/models/encoder").eval()
    features = encoder(images).global_features  # [B, E] for [B, 1, H, W] images normalised as the config says

timm alone loads it too (``import monai_mlip.networks`` first registers the project's stem architectures):
``timm.create_model("local-dir:<folder>", pretrained=True)``. The Hugging Face Hub takes the folder as it
is (``huggingface_hub.upload_folder``, or MONAI's ``push_to_hf_hub`` for a whole bundle).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from timm.models import save_for_hf
from timm.models._hub import save_config_for_hf  # timm exports only save_for_hf, which also writes the weights

from monai_mlip.networks.vision import VisionTower

__all__ = ["ENCODER_DIR", "SAVED", "encoder_config", "load_encoder", "save_encoder", "tower_from_config"]

ENCODER_DIR = "encoder"  # the exported encoder's folder inside a run's models folder
SAVED = "saved"  # load_encoder: the folder's own weights


def encoder_config(tower: VisionTower) -> dict[str, Any]:
    """The ``config.json`` :func:`save_encoder` writes for ``tower`` (timm's ``save_config_for_hf``)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        save_config_for_hf(tower.trunk, str(path))
        return json.loads(path.read_text())


def save_encoder(tower: VisionTower, directory: str | os.PathLike, card: str | None = None) -> Path:
    """Write ``tower`` to ``directory`` (replacing what is there) in timm's Hugging Face layout.

    Args:
        tower: the vision tower (its trunk's weights and ``pretrained_cfg`` are written).
        directory: the folder (created; a previous one is replaced only once the new one is complete).
        card: the ``README.md`` model card, or ``None``.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    previous = target.with_name(f".{target.name}.previous")
    try:
        save_for_hf(tower.trunk, str(staging), safe_serialization=True)
        if card is not None:
            (staging / "README.md").write_text(card)
        shutil.rmtree(previous, ignore_errors=True)
        if target.exists():
            target.rename(previous)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)
    return target


def tower_from_config(config: Mapping[str, Any], weights: str | os.PathLike | bool | None = None) -> VisionTower:
    """The vision tower an :func:`encoder_config` describes.

    Args:
        config: the ``config.json`` dict (``architecture``, ``model_args``, ``pretrained_cfg``).
        weights: ``None`` (random initialisation), ``True`` (the timm architecture's default weights from the
            local cache) or a local weights file.

    Returns:
        The tower; unless it took timm's default weights (which bring their own), its ``pretrained_cfg``
        keeps the config's ``mean`` and ``std``, so the same preprocessing serves the saved weights and a
        network rebuilt to load trained weights into.
    """
    args = {key: value for key, value in config["model_args"].items() if key != "num_classes"}
    image_size, in_chans = args.pop("img_size"), args.pop("in_chans")
    tower = VisionTower(
        config["architecture"],
        weights=weights,
        image_size=image_size[0] if isinstance(image_size, list | tuple) else image_size,
        in_chans=in_chans,
        **args,
    )
    if weights is not True:
        saved = config["pretrained_cfg"]
        tower.trunk.pretrained_cfg.update(mean=tuple(saved["mean"]), std=tuple(saved["std"]))
    return tower


def load_encoder(directory: str | os.PathLike, weights: str | os.PathLike | bool | None = SAVED) -> VisionTower:
    """Rebuild the vision tower :func:`save_encoder` wrote.

    Args:
        directory: the folder with ``config.json`` (and ``model.safetensors``).
        weights: ``"saved"`` (the folder's weights), or as :func:`tower_from_config` takes them: ``None``
            (the same architecture with random initialisation: a baseline), ``True`` (the timm
            architecture's default weights from the local cache) or a local weights file.

    Raises:
        FileNotFoundError: no ``config.json`` (or no weights file for ``"saved"``): the message says what
            writes them.
    """
    folder = Path(directory)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(
            f"{config_path} not found: a pre-training run writes its encoder to models/{ENCODER_DIR} when it "
            "completes (monai_mlip.networks.save_encoder writes one from any vision tower)"
        )
    if weights == SAVED:
        weights = folder / "model.safetensors"
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} not found: the folder holds a config without its weights")
    return tower_from_config(json.loads(config_path.read_text()), weights)
