"""``python -m monai_mlip.prepare mimic --dataset_dir ... --out_dir ...``: see :mod:`monai_mlip.prepare`."""

from __future__ import annotations

import argparse
import logging
import sys

from monai_mlip.prepare.mimic import prepare_mimic_cxr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m monai_mlip.prepare",
        description="Resize a dataset's images once (grey PNG, longest side --longest_side) and write one index "
        "file that the bundles' prepared data presets read. Rerun the same command to continue a run that "
        "stopped: finished images are kept.",
    )
    datasets = parser.add_subparsers(dest="dataset", required=True)
    mimic = datasets.add_parser("mimic", help="MIMIC-CXR-JPG 2.x or MIMIC-CXR 2.0.0 (DICOM)")
    mimic.add_argument("--dataset_dir", required=True, help="the release root, with the split/metadata/chexpert CSVs")
    mimic.add_argument("--out_dir", required=True, help="where the prepared images and index.jsonl.gz go")
    mimic.add_argument("--reports_dir", default=None, help="root of files/pXX/pSUBJECT/sSTUDY.txt if not dataset_dir")
    mimic.add_argument("--image_format", default="auto", choices=["auto", "jpg", "dcm"])
    mimic.add_argument("--views", nargs="*", default=["PA", "AP"], help="view positions to keep (none given: all)")
    mimic.add_argument("--longest_side", type=int, default=512)
    mimic.add_argument("--num_workers", type=int, default=None, help="processes (default: every CPU)")
    mimic.add_argument("--on_error", default="skip", choices=["skip", "raise"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    report = prepare_mimic_cxr(
        args.dataset_dir,
        args.out_dir,
        reports_dir=args.reports_dir,
        image_format=args.image_format,
        views=args.views or None,
        longest_side=args.longest_side,
        num_workers=args.num_workers,
        on_error=args.on_error,
    )
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
