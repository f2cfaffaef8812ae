"""``python -m monai_mlip.compare``: pre-train recipes at equal budget and compare them (see
:mod:`monai_mlip.compare.harness`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from monai_mlip.compare.harness import SCALES, compare
from monai_mlip.losses import list_recipes

DEFAULT_RECIPES = ("clip", "mlip", "mlip_no_ot", "mlip_no_sie", "mlip_no_mip", "mlip_no_mask", "mlip_kg", "mmclip")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monai_mlip.compare", description=__doc__)
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), choices=list_recipes())
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--scale", default="default", choices=sorted(SCALES), help="data, image size and length")
    parser.add_argument("--max_epochs", type=int, help="pre-training epochs instead of the scale's")
    parser.add_argument("--mask_ratio", type=float, help="mask ratio of the recipes that mask, instead of the preset's")
    parser.add_argument("--unmasked_epochs", type=int, help="final epochs of the masking recipes on whole images")
    parser.add_argument("--work_dir", type=Path, default=Path("comparison_runs"), help="the cells' bundle roots")
    parser.add_argument("--out_json", type=Path, default=Path("benchmarks/results/comparison.json"))
    parser.add_argument("--out_table", type=Path, default=Path("comparison.md"))
    parser.add_argument("--bundles_dir", type=Path, default=Path("bundles"), help="the folder holding the bundles")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    compare(
        args.recipes,
        args.seeds,
        args.scale,
        args.work_dir,
        args.out_json,
        args.out_table,
        args.bundles_dir,
        max_epochs=args.max_epochs,
        mask_ratio=args.mask_ratio,
        unmasked_epochs=args.unmasked_epochs,
    )
    print(args.out_table.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
