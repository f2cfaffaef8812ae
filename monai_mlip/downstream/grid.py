"""The few-shot grid: train and evaluate the downstream bundles for every data fraction and initialisation,
and write one markdown table of test AUC and Dice, with a zero-shot row for the classification tasks.

    python -m monai_mlip.downstream.grid --pretrained_dir bundles/mlip_pretrain/models --out few_shot.md

Run it from the repository root (or pass ``--bundles_dir``). Each cell is a real bundle run
(``train.json``, then ``train.json`` + ``evaluate.json``; zero-shot: ``evaluate.json`` with ``mode=zero_shot``)
in its own bundle root under ``--work``; the table cites the test-split figures the bundles wrote.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_mlip.bundle import run_bundle

__all__ = ["TASKS", "run_grid"]

# bundle, the metrics file evaluate.json writes, the figure to cite, and the column heading; classification
# tasks (a linear-probe metrics file) also get a zero-shot evaluation
ZERO_SHOT_FILE = "metrics_test_zero_shot.json"
TASKS: dict[str, tuple[str, str, str, str]] = {
    "rsna_classification": (
        "rsna_pneumonia_classification",
        "metrics_test_linear_probe.json",
        "pneumonia/auc",
        "RSNA linear-probe AUC",
    ),
    "siim_classification": (
        "siim_pneumothorax_classification",
        "metrics_test_linear_probe.json",
        "pneumothorax/auc",
        "SIIM linear-probe AUC",
    ),
    "rsna_segmentation": ("rsna_pneumonia_segmentation", "metrics_test.json", "val_dice", "RSNA Dice"),
    "siim_segmentation": ("siim_pneumothorax_segmentation", "metrics_test.json", "val_dice", "SIIM Dice"),
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
    """
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; choose from {sorted(TASKS)}")
    results: dict[tuple[str, float | str, str], float | None] = {}
    for task in tasks:
        bundle, metrics_file, figure, _ = TASKS[task]
        configs = Path(bundles_dir) / bundle / "configs"
        for fraction in fractions:
            for init in inits:
                root = Path(work_dir) / f"{task}_{fraction:g}_{init}"
                cell = {"pretrained_dir": str(pretrained_dir), "fraction": fraction, "init": init}
                cell.update((overrides or {}).get(task, {}))
                for files in (["train.json"], ["train.json", "evaluate.json"]):
                    run_bundle(configs, files, root, **cell)
                results[task, fraction, init] = json.loads((root / "eval" / metrics_file).read_text()).get(figure)
        if "linear_probe" in metrics_file and "mlip" in inits:
            root = Path(work_dir) / f"{task}_zero_shot"
            cell = {**(overrides or {}).get(task, {}), "pretrained_dir": str(pretrained_dir), "mode": "zero_shot"}
            run_bundle(configs, ["train.json", "evaluate.json"], root, **cell)
            results[task, "zero-shot", "mlip"] = json.loads((root / "eval" / ZERO_SHOT_FILE).read_text()).get(figure)
    return _table(results, tasks, fractions, inits)


def _table(results: Mapping, tasks: Sequence[str], fractions: Sequence[float], inits: Sequence[str]) -> str:
    columns = [(task, init) for task in tasks for init in inits]
    header = "| labels | " + " | ".join(f"{TASKS[task][3]}, {init} init" for task, init in columns) + " |"
    lines = [header, "|" + " --- |" * (len(columns) + 1)]
    rows = [(f"{fraction * 100:g} %", fraction) for fraction in fractions]
    if any(key[1] == "zero-shot" for key in results):
        rows.append(("zero-shot", "zero-shot"))
    for label, row in rows:
        cells = [results.get((task, row, init), "") for task, init in columns]
        shown = ["n/a" if value is None else value if value == "" else f"{value:.3f}" for value in cells]
        lines.append(f"| {label} | " + " | ".join(shown) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained_dir", required=True, help="the pre-training bundle's models folder")
    parser.add_argument("--out", type=Path, required=True, help="the markdown file to write")
    parser.add_argument("--work", type=Path, default=Path("few_shot_runs"), help="bundle roots of the runs")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    parser.add_argument("--inits", nargs="+", default=["mlip", "random"])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--bundles_dir", type=Path, default=Path("bundles"), help="the folder holding the bundles")
    args = parser.parse_args(argv)
    table = run_grid(
        args.pretrained_dir, args.work, args.fractions, args.inits, args.tasks, bundles_dir=args.bundles_dir
    )
    args.out.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
