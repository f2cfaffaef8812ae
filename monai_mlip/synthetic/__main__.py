"""Command line: write a synthetic dataset in a native layout, and optionally a preview sheet.

Example::

    python -m monai_mlip.synthetic --layout mimic --out data/mimic --n 2000 --seed 0 --workers 2 --preview 16
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from monai_mlip.synthetic.layouts import LAYOUTS, write_layout
from monai_mlip.synthetic.preview import preview_layout


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monai_mlip.synthetic",
        description="Write a synthetic chest X-ray dataset in the MIMIC-CXR(-JPG), RSNA or SIIM layout.",
    )
    parser.add_argument("--layout", choices=LAYOUTS, required=True, help="the native layout to write")
    parser.add_argument("--out", required=True, help="the dataset folder (created)")
    parser.add_argument("--n", type=int, required=True, help="number of studies / images")
    parser.add_argument("--seed", type=int, default=0, help="run seed (same seed and options: same bytes)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    parser.add_argument("--format", choices=("jpg", "dcm"), default="jpg", help="MIMIC image files (default jpg)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="rendering processes")
    parser.add_argument("--real-shapes", action="store_true", help="shape lesions with torchxrayvision's annotations")
    parser.add_argument("--preview", type=int, default=0, metavar="K", help="also write preview.png of K items")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = _parser().parse_args(argv)
    options = {
        "seed": args.seed,
        "image_size": args.size,
        "real_shapes": args.real_shapes,
        "workers": args.workers,
        "progress": not args.no_progress,
    }
    if args.layout == "mimic":
        options["image_format"] = args.format
    summary = write_layout(args.layout, args.out, args.n, **options)
    if summary.cached:
        print(f"{summary.root}: already written with these options ({summary.n_images} images)")
    else:
        rate = summary.n_studies / summary.seconds * 60 if summary.seconds else float("inf")
        print(
            f"{summary.root}: {summary.n_studies} studies, {summary.n_images} images in {summary.seconds:.1f} s "
            f"({rate:.0f} studies/minute at {args.size} px, {args.workers} worker(s))"
        )
    counts = ", ".join(f"{name} {count}" for name, count in sorted(summary.counts.items()))
    print(f"counts: {counts}")
    if args.preview:
        path = preview_layout(
            args.layout, os.path.join(args.out, "preview.png"), args.preview, args.seed, args.size, args.real_shapes
        )
        print(f"preview: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
