"""Does training on masked views leave the tiny tower's BatchNorm statistics wrong for whole images?

For each finished comparison cell given, evaluate the zero-shot AUC as saved (running statistics gathered
on masked training views), then again after re-estimating every BatchNorm layer's statistics on whole
training images (16 batches, train mode, no gradient, cumulative average), and print both. Cells trained
without masking are the controls. Run from the repository root:

    python docs/investigations/bn_recalibration.py comparison_runs/default mlip_seed0 clip_seed0

(the cells of ``python -m monai_mlip.compare --scale default``; each is copied to a scratch folder first).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from monai_mlip.bundle import bundle_workflow
from monai_mlip.compare import SCALES

CONFIGS = Path(__file__).resolve().parents[2] / "bundles" / "mlip_pretrain" / "configs"
BATCHES = 16


def zero_shot(workflow, root: Path) -> dict[str, float]:
    """Run the validation evaluator and read its zero-shot AUCs."""
    workflow.parser.get_parsed_content("validate#evaluator").run()
    metrics = json.loads((root / "eval" / "metrics_validate.json").read_text())
    return {name: value for name, value in metrics.items() if name.startswith("zero_shot_auc/")}


def recalibrate(network: torch.nn.Module, loader) -> int:
    """Re-estimate every BatchNorm layer's statistics on whole images; returns the number of layers."""
    layers = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average over the batches seen
    network.train()
    with torch.no_grad():
        for number, batch in enumerate(loader):
            network.vision(batch["image"].float())
            if number + 1 == BATCHES:
                break
    network.eval()
    return len(layers)


def main(cells_dir: str, *cells: str) -> None:
    scale = SCALES["default"]
    for cell in cells:
        root = Path(tempfile.mkdtemp()) / cell
        shutil.copytree(
            Path(cells_dir) / cell / "models", root / "models", ignore=shutil.ignore_patterns("checkpoint*")
        )
        workflow = bundle_workflow(
            CONFIGS,
            ["train.json", "evaluate.json"],
            root,
            val_split="validate",
            num_workers=0,
            **{"synthetic#studies": scale["studies"], "synthetic#image_size": scale["image_size"]},
        )
        before = zero_shot(workflow, root)
        layers = recalibrate(
            workflow.parser.get_parsed_content("network"), workflow.parser.get_parsed_content("train#dataloader")
        )
        after = zero_shot(workflow, root)
        print(f"{cell}: {layers} BatchNorm layers recalibrated")
        for name, value in before.items():
            print(f"  {name:32s} {value:.3f} -> {after[name]:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
