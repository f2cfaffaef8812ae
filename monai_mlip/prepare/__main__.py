"""``python -m monai_mlip.prepare {mimic,rsna,siim,chexpert} ...``: see :mod:`monai_mlip.prepare`."""

from __future__ import annotations

import argparse
import logging
import sys

from monai_mlip.prepare.chexpert import prepare_chexpert
from monai_mlip.prepare.mimic import prepare_mimic_cxr
from monai_mlip.prepare.rsna import prepare_rsna
from monai_mlip.prepare.siim import prepare_siim


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out_dir", required=True, help="the prepared set's root (created)")
    parser.add_argument("--longest_side", type=int, default=512, help="longest side of the prepared images")
    parser.add_argument("--num_workers", type=int, default=None, help="processes (default: every CPU)")
    parser.add_argument("--on_error", default="skip", choices=["skip", "raise"], help="skip and count bad items")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m monai_mlip.prepare",
        description="Resize a dataset's images once (grey PNG, longest side --longest_side) and write the index "
        "that the bundles' prepared data presets read. Rerun the same command to continue a run that stopped: "
        "finished images are kept.",
    )
    datasets = parser.add_subparsers(dest="dataset", required=True)
    mimic = datasets.add_parser("mimic", help="MIMIC-CXR-JPG 2.x or MIMIC-CXR 2.0.0 (DICOM)")
    mimic.add_argument("--dataset_dir", required=True, help="the release root, with the split/metadata/chexpert CSVs")
    mimic.add_argument("--reports_dir", default=None, help="root of files/pXX/pSUBJECT/sSTUDY.txt if not dataset_dir")
    mimic.add_argument("--image_format", default="auto", choices=["auto", "jpg", "dcm"])
    mimic.add_argument("--views", nargs="*", default=["PA", "AP"], help="view positions to keep (none given: all)")
    rsna = datasets.add_parser("rsna", help="RSNA Pneumonia Detection Challenge (stage 2 training set)")
    rsna.add_argument("--dataset_dir", required=True, help="the folder with stage_2_train_images/ and the labels CSV")
    siim = datasets.add_parser("siim", help="SIIM-ACR Pneumothorax Segmentation (training set)")
    siim.add_argument("--dataset_dir", required=True, help="the folder with dicom-images-train/ and train-rle.csv")
    siim.add_argument("--images_subdir", default="dicom-images-train")
    siim.add_argument("--rle_file", default="train-rle.csv")
    chexpert = datasets.add_parser("chexpert", help="CheXpert v1.0 (the images one label CSV lists)")
    chexpert.add_argument("--csv", required=True, help="train.csv or valid.csv")
    chexpert.add_argument("--image_root", required=True, help="the folder the CSV's Path column is relative to")
    chexpert.add_argument("--all_views", action="store_true", help="also prepare lateral images")
    for sub in (mimic, rsna, siim, chexpert):
        _common(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    common = {
        "longest_side": args.longest_side,
        "num_workers": args.num_workers,
        "on_error": args.on_error,
    }
    if args.dataset == "mimic":
        report = prepare_mimic_cxr(
            args.dataset_dir,
            args.out_dir,
            reports_dir=args.reports_dir,
            image_format=args.image_format,
            views=args.views or None,
            **common,
        )
    elif args.dataset == "rsna":
        report = prepare_rsna(args.dataset_dir, args.out_dir, **common)
    elif args.dataset == "siim":
        report = prepare_siim(
            args.dataset_dir, args.out_dir, images_subdir=args.images_subdir, rle_file=args.rle_file, **common
        )
    else:
        report = prepare_chexpert(args.csv, args.image_root, args.out_dir, frontal_only=not args.all_views, **common)
    print(report.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
