"""Shared pieces of the benchmarks: paired timing, the command line, result files.

Every benchmark times two things side by side in one process and reports their ratio, so the figures
mean something on a shared, noisy machine: the two are run alternately, several rounds, and the median
of each is kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from monai_mlip.atomic_io import write_json_atomic

RESULTS = Path(__file__).resolve().parent / "results"
SUMMARY = "summary.json"


def parse_args(description: str) -> argparse.Namespace:
    """``--quick`` (tiny sizes, one round: checks that the script runs) and ``--out`` (results folder)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one round, to check the script runs")
    parser.add_argument("--out", type=Path, help=f"results folder (default {RESULTS}, with --quick its quick/)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per pair (median kept)")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 1
    if args.out is None:
        args.out = RESULTS / "quick" if args.quick else RESULTS
    return args


def median_seconds(fn: Callable[[], Any], rounds: int) -> float:
    """Median wall time of ``fn()`` over ``rounds`` calls (after one untimed warm-up call)."""
    fn()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_seconds(first: Callable[[], Any], second: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median wall times of ``first()`` and ``second()``, called alternately ``rounds`` times each."""
    first(), second()  # warm-up
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, store in zip((first, second), times, strict=True):
            start = time.perf_counter()
            fn()
            store.append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def synthetic_reports(n: int, root: Path) -> list[str]:
    """Report texts of ``n`` synthetic MIMIC-style studies (written small under ``root``)."""
    from monai_mlip.bundle import synthetic_dataset
    from monai_mlip.data import build_mimic_cxr_manifest

    dataset = synthetic_dataset("mimic", n=n, seed=0, image_size=64, root=root)
    return [item["report"] for item in build_mimic_cxr_manifest(dataset, split=None)]


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def write_results(out: Path, name: str, detail: dict[str, Any], headline: dict[str, float | None]) -> None:
    """Write ``{name}.json`` (the detail) and merge the headline figures into ``summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / f"{name}.json", {"machine": machine(), **detail})
    summary_path = out / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary.update(headline)
    write_json_atomic(summary_path, dict(sorted(summary.items())))
    print(json.dumps(headline, indent=2))
