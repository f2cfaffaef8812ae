"""The few-shot grid: train and evaluate the downstream bundles for every data fraction and initialisation,
and write one markdown table of test AUC and Dice (over all test images, and over those with a lesion),
with zero-shot rows (the global score, and the OT local one) for the classification tasks.

    python -m monai_mlip.downstream.grid --pretrained_dir bundles/mlip_pretrain/models --out few_shot.md

``--overrides`` takes a JSON object of per-task bundle overrides, for example the real datasets and the
frozen-encoder segmentation protocol:

    --overrides '{"rsna_classification": {"dataset_dir": "/data/rsna"}, "siim_segmentation": {"freeze_encoder": true}}'

Run it from the repository root (or pass ``--bundles_dir``). Each cell is a real bundle run
(``train.json``, then ``train.json`` + ``evaluate.json``; zero-shot: ``evaluate.json`` with ``mode=zero_shot``,
``zero_shot_score`` global and local)
in its own bundle root under ``--work``; the table cites the test-split figures the bundles wrote.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from monai_mlip.bundle import run_bundle

__all__ = ["TASKS", "GridTask", "run_grid"]

# zero-shot score -> (table row, the metrics file evaluate.json writes for it)
ZERO_SHOT_ROWS = {
    "global": ("zero-shot", "metrics_test_zero_shot.json"),
    "local": ("zero-shot, OT local", "metrics_test_zero_shot_local.json"),
}


class GridTask(NamedTuple):
    """A bundle of the grid, the metrics file its ``evaluate.json`` writes, and the figures the table cites.

    ``figures`` pairs each metrics key with its column heading; the first is the task's headline figure (a
    classification task, whose metrics file is a linear probe's, also gets a zero-shot row with it).
    """

    bundle: str
    metrics_file: str
    figures: tuple[tuple[str, str], ...]


TASKS: dict[str, GridTask] = {
    "rsna_classification": GridTask(
        "rsna_pneumonia_classification", "metrics_test_linear_probe.json", (("pneumonia/auc", "RSNA linear-probe AUC"),)
    ),
    "siim_classification": GridTask(
        "siim_pneumothorax_classification",
        "metrics_test_linear_probe.json",
        (("pneumothorax/auc", "SIIM linear-probe AUC"),),
    ),
    # Dice over every test image (the protocol's: an empty prediction on an empty image scores 1), then over
    # the images with a lesion only, which the first mixes with "predicts nothing on negatives"
    "rsna_segmentation": GridTask(
        "rsna_pneumonia_segmentation",
        "metrics_test.json",
        (("val_dice", "RSNA Dice"), ("val_dice_positive", "RSNA Dice on positives")),
    ),
    "siim_segmentation": GridTask(
        "siim_pneumothorax_segmentation",
        "metrics_test.json",
        (("val_dice", "SIIM Dice"), ("val_dice_positive", "SIIM Dice on positives")),
    ),
}


def run_grid(
    pretrained_dir: str | os.PathLike,
    work_dir: str | os.PathLike,
    fractions: Sequence[float] = (0.01, 0.1, 1.0),
    inits: Sequence[str] = ("mlip", "random"),
    tasks: Sequence[str] = tuple(TASKS),
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    bundles_dir: str | os.PathLike = "bundles",
) -> str:
    """Run every (task, fraction, init) cell and return the markdown table.

    Args:
        pretrained_dir: the pre-training bundle's ``models`` folder.
        work_dir: where each cell's bundle root goes (``<task>_<fraction>_<init>``).
        fractions: shares of the training labels.
        inits: encoder initialisations (``mlip``, ``random``).
        tasks: keys of :data:`TASKS`.
        overrides: per task, more bundle overrides (``dataset_dir``, ``max_epochs``, ...).
        bundles_dir: the folder holding the bundles.

    Raises:
        ValueError: a task not in :data:`TASKS`, or overrides for a task the grid does not run (a typo
            there would otherwise silently run that task on its defaults).
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; choose from {sorted(TASKS)}")
    unused = sorted(set(overrides or {}) - set(tasks))
    if unused:
        raise ValueError(f"overrides name tasks the grid does not run: {unused}; it runs {list(tasks)}")
    results: dict[tuple[str, float | str, str, str], float | None] = {}
    for task in tasks:
        bundle, metrics_file, figures = TASKS[task]
        configs = Path(bundles_dir) / bundle / "configs"
        for fraction in fractions:
            for init in inits:
                root = Path(work_dir) / f"{task}_{fraction:g}_{init}"
                cell = {"pretrained_dir": str(pretrained_dir), "fraction": fraction, "init": init}
                cell.update((overrides or {}).get(task, {}))
                for files in (["train.json"], ["train.json", "evaluate.json"]):
                    run_bundle(configs, files, root, **cell)
                metrics = json.loads((root / "eval" / metrics_file).read_text())
                results.update(((task, fraction, init, key), metrics.get(key)) for key, _ in figures)
        if "linear_probe" in metrics_file and "mlip" in inits:
            root = Path(work_dir) / f"{task}_zero_shot"
            for score, (row, zero_shot_file) in ZERO_SHOT_ROWS.items():
                cell = {**(overrides or {}).get(task, {}), "pretrained_dir": str(pretrained_dir)}
                cell.update(mode="zero_shot", zero_shot_score=score)
                run_bundle(configs, ["train.json", "evaluate.json"], root, **cell)
                key = figures[0][0]
                results[task, row, "mlip", key] = json.loads((root / "eval" / zero_shot_file).read_text()).get(key)
    return _table(results, tasks, fractions, inits)


def _table(results: Mapping, tasks: Sequence[str], fractions: Sequence[float], inits: Sequence[str]) -> str:
    columns = [(task, key, heading, init) for task in tasks for key, heading in TASKS[task].figures for init in inits]
    header = "| labels | " + " | ".join(f"{heading}, {init} init" for _, _, heading, init in columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    rows = [(f"{fraction * 100:g} %", fraction) for fraction in fractions]
    rows += [(row, row) for row, _ in ZERO_SHOT_ROWS.values() if any(key[1] == row for key in results)]
    for label, row in rows:
        cells = [results.get((task, row, init, key), "") for task, key, _, init in columns]
        shown = ["n/a" if value is None else value if value == "" else f"{value:.3f}" for value in cells]
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def _task_overrides(text: str) -> dict[str, dict[str, Any]]:
    """Parse ``--overrides``: a JSON object mapping task names to objects of bundle overrides."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"--overrides is not valid JSON ({error}): {text}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise argparse.ArgumentTypeError(f'--overrides must be {{"<task>": {{"<key>": value}}}}, got {text}')
    return value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained_dir", required=True, help="the pre-training bundle's models folder")
    parser.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    parser.add_argument("--work", type=Path, default=Path("few_shot_runs"), help="bundle roots of the runs")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--inits", nargs="+", default=["mlip", "random"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--bundles_dir", type=Path, default=Path("bundles"), help="the folder holding the bundles")
    parser.add_argument(
        "--overrides",
        type=_task_overrides,
        default={},
        help='JSON object of per-task bundle overrides: {"<task>": {"<key>": value, ...}, ...}',
    )
    args = parser.parse_args(argv)
    table = run_grid(
        args.pretrained_dir,
        args.work,
        args.fractions,
        args.inits,
        args.tasks,
        overrides=args.overrides,
        bundles_dir=args.bundles_dir,
    )
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
