"""The benchmark scripts run (``--quick``: tiny sizes), so they cannot rot; no timing is asserted."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monai_mlip.networks import PRESETS

pytestmark = pytest.mark.slow  # the integration tier: the benchmarks at their quick sizes

REPO = Path(__file__).resolve().parents[1]


def run_quick(module: str, out: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MONAI_MLIP_CACHE": str(out / "cache")}
    command = [sys.executable, "-m", f"benchmarks.{module}", "--quick", "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return json.loads((out / "summary.json").read_text())


def test_ot_loss_batched_equals_the_per_pair_loop(tmp_path):
    summary = run_quick("ot_loss", tmp_path)
    assert summary["ot_speedup_b32"] is None  # no batch 32 in the quick sizes
    rows = json.loads((tmp_path / "ot_loss.json").read_text())["rows"]
    assert [row["batch"] for row in rows] == [4, 8]
    for row in rows:
        assert row["max_similarity_difference"] < 1e-4
        assert row["batched_loss"] == pytest.approx(row["per_pair_loss"], abs=1e-4)
        assert row["batched_s"] > 0 and row["per_pair_s"] > 0


def test_train_step(tmp_path):
    summary = run_quick("train_step", tmp_path)
    assert summary["mlip_over_clip_step_tiny"] > 0
    shapes = json.loads((tmp_path / "train_step.json").read_text())["shapes"]
    assert shapes["tiny"]["mask_ratio"] == PRESETS["tiny"].mask_ratio and shapes["tiny"]["batch"] == 4


def test_data_pipeline(tmp_path):
    summary = run_quick("data_pipeline", tmp_path)
    detail = json.loads((tmp_path / "data_pipeline.json").read_text())
    assert summary["loader_over_consumption"] > 0 and detail["train_images"] > 0
    assert detail["consumed_images_per_s"] > 0 and detail["loader_images_per_s"] > 0


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc for the peak resident set")
def test_ot_memory(tmp_path):
    run_quick("ot_memory", tmp_path)
    detail = json.loads((tmp_path / "ot_memory.json").read_text())
    assert [row["batch"] for row in detail["rows"]] == [4, 8]
    assert all(row["peak_bytes"] >= 0 for row in detail["rows"])
    exponent = detail["growth_exponent_largest_sizes"]
    assert exponent is None or math.isfinite(exponent)


def test_gpu_step_runs_its_quick_shapes(tmp_path):
    summary = run_quick("gpu_step", tmp_path)
    detail = json.loads((tmp_path / "gpu_step.json").read_text())
    assert detail["flops_per_step"] > 0 and summary["gpu_images_per_s"] > 0


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc for the memory figures")
def test_real_scale(tmp_path):
    summary = run_quick("real_scale", tmp_path)
    detail = json.loads((tmp_path / "real_scale.json").read_text())
    assert summary["quick_prepare_over_naive_decode"] > 0 and detail["prepare"]["prepared_png_kb"] > 0
    assert [row["studies"] for row in detail["pipeline"]] == [240, 2400]
    assert all(row["pipeline_pss_gb"] > 0 and row["loader_workers"] == 2 for row in detail["pipeline"])


def test_recipe_step(tmp_path):
    summary = run_quick("recipe_step", tmp_path)
    rows = json.loads((tmp_path / "recipe_step.json").read_text())["rows"]
    assert set(rows) >= {"clip", "mlip", "mlip_kg", "mmclip"} and summary["mmclip_over_mlip_step_tiny"] > 0
    assert rows["clip"]["trained_parameters"] < rows["mlip"]["trained_parameters"]
