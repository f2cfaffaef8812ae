"""Two probes of why masking does not help the tiny preset at the comparison's budget.

``bn``: does training on masked views leave the tiny tower's BatchNorm statistics wrong for whole images?
For each finished comparison cell, the zero-shot AUC as saved (running statistics gathered on masked
training views), then after re-estimating every BatchNorm layer's statistics on whole training images
(16 batches, train mode, no gradient, cumulative average). Cells trained without masking are the controls.

``masked_eval``: what does a masked view do to the evidence of each finding? The zero-shot AUC on whole
validation images, then on the same images with a quarter of the patches blanked as in training (random
masks from a fixed seed), per finding.

Run from the repository root on the cells of ``python -m monai_mlip.compare --scale default`` (each is
copied to a scratch folder first):

    python docs/investigations/masking.py bn comparison_runs/default mlip_seed0 clip_seed0
    python docs/investigations/masking.py masked_eval comparison_runs/default clip_seed0
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
MASK_RATIO = 0.25


def zero_shot(workflow, root: Path) -> dict[str, float]:
    """Run the validation evaluator and read its zero-shot AUCs."""
    workflow.parser.get_parsed_content("validate#evaluator").run()
    metrics = json.loads((root / "eval" / "metrics_validate.json").read_text())
    return {name: value for name, value in metrics.items() if name.startswith("zero_shot_auc/")}


def recalibrate(network: torch.nn.Module, loader) -> None:
    """Re-estimate every BatchNorm layer's statistics on whole training images."""
    for layer in network.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.reset_running_stats()
            layer.momentum = None  # a cumulative average over the batches seen
    network.train()
    with torch.no_grad():
        for number, batch in enumerate(loader):
            network.vision(batch["image"].float())
            if number + 1 == BATCHES:
                break
    network.eval()


def blank_patches(network: torch.nn.Module, seed: int = 0) -> None:
    """Make the vision tower hide ``MASK_RATIO`` of the patches of every image it encodes, as in training."""
    whole = network.vision.forward
    generator = torch.Generator().manual_seed(seed)

    def masked(image: torch.Tensor, *args: object, **kwargs: object):
        return whole(image, mask_ratio=MASK_RATIO, generator=generator)

    network.vision.forward = masked


def main(probe: str, cells_dir: str, *cells: str) -> None:
    if probe not in ("bn", "masked_eval"):
        raise SystemExit(f"probe must be 'bn' or 'masked_eval', got {probe!r}")
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
        network = workflow.parser.get_parsed_content("network")
        before = zero_shot(workflow, root)
        if probe == "bn":
            recalibrate(network, workflow.parser.get_parsed_content("train#dataloader"))
        else:
            blank_patches(network)
        after = zero_shot(workflow, root)
        print(f"{cell} ({probe}): before -> after")
        for name, value in before.items():
            print(f"  {name:32s} {value:.3f} -> {after[name]:.3f}")


if __name__ == "__main__":
    main(*sys.argv[1:])
