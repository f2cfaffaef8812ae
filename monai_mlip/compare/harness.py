"""The comparison harness: pre-train each recipe on the same data, towers, steps and seeds, evaluate every
checkpoint the same way, and tabulate the means with their 95 % intervals.

A cell is one (recipe, seed): a real run of the pre-training bundle (``--recipe``, ``--seed``; the data,
the preset and the length fixed by the scale), whose final validation gives the zero-shot AUC per finding
and the grounding pointing game and IoU beside their random-map baselines, then the frozen-encoder
evaluation of its exported encoder (:mod:`monai_mlip.compare.probe`) on the synthetic RSNA and SIIM
layouts: linear-probe AUC at 1 % and 10 % of the training labels, and Dice of a light head at 10 %. A
finished cell writes ``cell.json`` in its folder and is skipped when the harness runs again with the same
settings, so a stopped comparison continues where it was. After every cell the harness rewrites the
results JSON (recipe -> metric -> per-seed values, plus the settings) and the markdown table.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from monai_mlip.atomic_io import write_atomic, write_json_atomic
from monai_mlip.bundle import run_bundle
from monai_mlip.compare.probe import encode_items, linear_probe_auc, segmentation_dice
from monai_mlip.downstream.datasets import DATASETS
from monai_mlip.losses import get_recipe
from monai_mlip.networks.export import ENCODER_DIR, load_encoder

__all__ = ["SCALES", "compare", "run_cell", "scale_settings", "summary_table"]

logger = logging.getLogger("monai_mlip.compare")

# what a comparison at each scale trains on; "default" is sized for two CPU cores, "large" for a GPU
SCALES: dict[str, dict[str, Any]] = {
    "toy": {
        "studies": 60,
        "image_size": 64,
        "max_epochs": 1,
        "batch_size": 16,
        "downstream": 60,
        "model": {"image_size": 32},
    },
    "default": {"studies": 1200, "image_size": 128, "max_epochs": 6, "batch_size": 32, "downstream": 400, "model": {}},
    "large": {"studies": 2400, "image_size": 256, "max_epochs": 10, "batch_size": 64, "downstream": 1200, "model": {}},
}
FRACTIONS = (0.01, 0.1)
CELL_FILE = "cell.json"


def scale_settings(
    scale: str, max_epochs: int | None = None, mask_ratio: float | None = None, unmasked_epochs: int | None = None
) -> dict[str, Any]:
    """The settings of ``scale``, with the pre-training length, the masking recipes' mask ratio and their
    final unmasked epochs (:class:`~monai_mlip.handlers.UnmaskedTuning`) overridden when given (to ask
    whether a part helps with a longer budget, another ratio or a final phase on whole images)."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    settings = {**SCALES[scale], "model": dict(SCALES[scale]["model"])}
    if max_epochs is not None:
        settings["max_epochs"] = int(max_epochs)
    if mask_ratio is not None:
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        settings["mask_ratio"] = float(mask_ratio)
    if unmasked_epochs:
        settings["unmasked_epochs"] = int(unmasked_epochs)
    return settings


def run_cell(
    recipe: str, seed: int, settings: dict[str, Any], cell_dir: str | os.PathLike, bundles_dir: str | os.PathLike
) -> dict:
    """Pre-train ``recipe`` with ``seed`` and the scale ``settings`` (:func:`scale_settings`) into ``cell_dir``
    and evaluate it; returns metric -> value.

    A ``mask_ratio`` in the settings applies to the recipes that mask with the preset's ratio; a recipe that
    fixes its own (``clip``, ``mlip_no_mask``: whole images) keeps it."""
    model = dict(settings["model"])
    if "mask_ratio" in settings and get_recipe(recipe).mask_ratio is None:
        model["mask_ratio"] = settings["mask_ratio"]
    cell_dir = Path(cell_dir)
    run_bundle(
        Path(bundles_dir) / "mlip_pretrain" / "configs",
        ["train.json"],
        cell_dir,
        recipe=recipe,
        seed=seed,
        max_epochs=settings["max_epochs"],
        batch_size=settings["batch_size"],
        num_workers=0,
        **{"synthetic#studies": settings["studies"], "synthetic#image_size": settings["image_size"]},
        model_overrides=model,
        unmasked_epochs=settings.get("unmasked_epochs", 0),
    )
    validation = json.loads((cell_dir / "eval" / "metrics.json").read_text())
    metrics = {
        name: float(value)
        for name, value in validation.items()
        if name.startswith(("zero_shot_auc/", "grounding/pointing_game", "grounding/iou")) and value is not None
    }
    encoder = load_encoder(cell_dir / "models" / ENCODER_DIR)
    for name, dataset in DATASETS.items():
        folder = dataset.synthetic(settings["downstream"], settings["image_size"])
        test = encode_items(encoder, dataset.manifest(folder, "test"), dataset.mask_transform)
        for fraction in FRACTIONS:
            items = dataset.manifest(folder, "train", fraction=fraction, seed=seed)
            train = encode_items(encoder, items, dataset.mask_transform)
            if len(set(train.labels.tolist())) == 2:
                metrics[f"{name}/probe_auc_{fraction:g}"] = linear_probe_auc(train, test)
            if fraction == 0.1:
                metrics[f"{name}/dice_{fraction:g}"] = segmentation_dice(train, test, seed=seed)
    return metrics


def compare(
    recipes: Sequence[str],
    seeds: Sequence[int],
    scale: str,
    work_dir: str | os.PathLike,
    out_json: str | os.PathLike,
    out_table: str | os.PathLike,
    bundles_dir: str | os.PathLike = "bundles",
    max_epochs: int | None = None,
    mask_ratio: float | None = None,
    unmasked_epochs: int | None = None,
) -> dict[str, Any]:
    """Run (or reuse) every cell and write the results; returns what ``out_json`` holds.

    ``max_epochs``, ``mask_ratio`` and ``unmasked_epochs`` override the scale's (:func:`scale_settings`); the
    settings are kept with each cell, so a cell finished under other settings is run again."""
    cell_settings = scale_settings(scale, max_epochs, mask_ratio, unmasked_epochs)
    settings = {"scale": scale, **cell_settings, "fractions": list(FRACTIONS), "seeds": list(seeds)}
    for recipe in recipes:
        get_recipe(recipe)  # an unknown name fails before any work
    results: dict[str, dict[str, list[float]]] = {recipe: {} for recipe in recipes}
    for seed in seeds:  # every recipe at a seed before the next seed: a stopped run leaves a balanced table
        for recipe in recipes:
            cell_dir = Path(work_dir) / scale / f"{recipe}_seed{seed}"
            metrics = _finished(cell_dir, settings)
            if metrics is None:
                logger.info("cell %s seed %d: running", recipe, seed)
                metrics = run_cell(recipe, seed, cell_settings, cell_dir, bundles_dir)
                write_json_atomic(cell_dir / CELL_FILE, {"settings": settings, "metrics": metrics})
            for name, value in metrics.items():
                results[recipe].setdefault(name, []).append(value)
            record = {"settings": settings, "results": results}
            write_json_atomic(out_json, record)
            write_atomic(out_table, lambda handle: handle.write(summary_table(results)), "w")
    return record


def _finished(cell_dir: Path, settings: dict[str, Any]) -> dict[str, float] | None:
    """The metrics of a cell finished with the same settings, else ``None``."""
    path = cell_dir / CELL_FILE
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    same = {k: v for k, v in saved["settings"].items() if k != "seeds"} == {
        k: v for k, v in settings.items() if k != "seeds"
    }
    return saved["metrics"] if same else None


def _cell(values: Sequence[float]) -> str:
    """``mean ± half-width`` of the 95 % t interval (the mean alone for one value)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return ""
    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.3f}"
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values)))
    return f"{mean:.3f} ± {half:.3f}"


def summary_table(results: dict[str, dict[str, list[float]]]) -> str:
    """A markdown table: one row per metric, one column per recipe, mean ± 95 % interval over the seeds."""
    recipes = list(results)
    metrics = sorted({name for per_recipe in results.values() for name in per_recipe})
    lines = ["| metric | " + " | ".join(recipes) + " |", "| --- |" + " --- |" * len(recipes)]
    for name in metrics:
        lines.append(f"| {name} | " + " | ".join(_cell(results[r].get(name, [])) for r in recipes) + " |")
    return "\n".join(lines) + "\n"
