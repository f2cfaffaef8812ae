"""The downstream bundles a MONAI Label app serves, and their copies in the app's ``model`` folder.

MONAI Label serves a bundle from ``APP_DIR/model/<name>/`` and only when it has weights
(``models/model.pt``). :func:`install_bundle` copies a bundle there and, the first time, seeds its weights
from the pre-trained MLIP encoder, so a clinical team can fine-tune from the pre-trained encoder without
running the bundle first.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = [
    "BUNDLE_KINDS",
    "REQUIRED_CONFIGS",
    "bundle_kind",
    "check_pretrained_dir",
    "find_bundles",
    "install_bundle",
    "seed_model",
    "select_bundles",
]

BUNDLE_KINDS = ("classification", "segmentation")
REQUIRED_CONFIGS = ("metadata.json", "inference.json", "train.json")


def bundle_kind(name: str) -> str | None:
    """``classification`` or ``segmentation`` from a bundle's folder name (the model-zoo naming that MONAI
    Label reads too), ``None`` for other bundles."""
    lowered = name.lower()
    return next((kind for kind in BUNDLE_KINDS if kind in lowered), None)


def find_bundles(bundles_dir: str | os.PathLike) -> dict[str, Path]:
    """The bundles under ``bundles_dir`` that the app can serve: folders named ``*classification*`` or
    ``*segmentation*`` with ``configs/`` ``metadata.json``, ``inference.json`` and ``train.json``.

    Raises:
        FileNotFoundError: ``bundles_dir`` is not a folder.
    """
    root = Path(bundles_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no bundles folder here; start the app with --conf bundles DIR")
    return {
        path.name: path
        for path in sorted(root.iterdir())
        if bundle_kind(path.name) and all((path / "configs" / name).is_file() for name in REQUIRED_CONFIGS)
    }


def select_bundles(bundles_dir: str | os.PathLike, wanted: str = "all") -> dict[str, Path]:
    """The bundles to serve: ``wanted`` is ``all`` (every one :func:`find_bundles` lists) or comma-separated names.

    Raises:
        ValueError: a name is not a downstream bundle of ``bundles_dir``, or none is named (the message lists them).
    """
    available = find_bundles(bundles_dir)
    names = list(available) if wanted == "all" else [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = sorted(set(names) - set(available))
    if unknown or not names:
        raise ValueError(
            f"models {wanted!r}: {unknown or 'nothing'} to serve; "
            f"the downstream bundles in {bundles_dir} are {sorted(available)}"
        )
    return {name: available[name] for name in names}


def check_pretrained_dir(pretrained_dir: str | os.PathLike) -> Path:
    """``pretrained_dir`` as an absolute path, once it is known to hold a pre-training run's image encoder.

    Raises:
        FileNotFoundError: it has no ``encoder/config.json``; the message says which run writes it.
    """
    from monai_mlip.networks.export import ENCODER_DIR

    path = Path(pretrained_dir).resolve()
    if not (path / ENCODER_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} has no {ENCODER_DIR}/config.json: pass the models folder of a finished pre-training run "
            "(python -m monai.bundle run --config_file bundles/mlip_pretrain/configs/train.json "
            "writes bundles/mlip_pretrain/models)"
        )
    return path


def install_bundle(source: str | os.PathLike, model_dir: str | os.PathLike, pretrained_dir: str | os.PathLike) -> Path:
    """Copy bundle ``source`` into ``model_dir/<name>`` and seed its weights when it has none.

    The configs, ``docs/`` and ``LICENSE`` are copied on every call, so the app
    always runs the bundle's current configs; ``models/`` is never overwritten: a fine-tuned ``model.pt``
    survives restarts. Without one, :func:`seed_model` writes the starting weights.

    Returns:
        The installed bundle folder.
    """
    source = Path(source)
    target = Path(model_dir) / source.name
    for folder in ("configs", "docs"):
        if (source / folder).is_dir():
            shutil.copytree(source / folder, target / folder, dirs_exist_ok=True)
    if (source / "LICENSE").is_file():
        shutil.copyfile(source / "LICENSE", target / "LICENSE")
    if not (target / "models" / "model.pt").is_file():
        seed_model(target, pretrained_dir)
    return target


def seed_model(bundle: str | os.PathLike, pretrained_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write ``models/model.pt`` of ``bundle`` and the config that rebuilds it (``network_config.json``): the
    state of its training network (``network_def`` of ``train.json``) built on ``pretrained_dir``: the
    pre-trained MLIP encoder with a newly initialised head or decoder (drawn with ``seed``).

    Raises:
        RuntimeError: MONAI's wrapper of an error building the network (its cause says what went wrong).
    """
    import torch
    from monai.bundle import ConfigParser

    from monai_mlip.atomic_io import save_atomic, write_json_atomic
    from monai_mlip.downstream.saved import NETWORK_CONFIG, network_config

    bundle = Path(bundle)
    parser = ConfigParser()
    parser.read_meta(str(bundle / "configs" / "metadata.json"))
    parser.read_config(str(bundle / "configs" / "train.json"))
    parser["bundle_root"] = str(bundle)
    parser["pretrained_dir"] = str(pretrained_dir)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        network = parser.get_parsed_content("network_def")
    path = bundle / "models" / "model.pt"
    save_atomic(network.state_dict(), path)
    write_json_atomic(path.with_name(NETWORK_CONFIG), network_config(network))  # inference rebuilds from it
    return path
