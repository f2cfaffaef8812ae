"""Data: images per second the pre-training bundle's loader delivers against what its training step consumes.

Both sides come from the bundle's own ``train.json`` (parsed with MONAI's ``ConfigParser``, pointed at a
synthetic MIMIC-CXR-JPG layout): the loader side is ``train#dataset`` (a ``CacheDataset``: JPEG decode,
report tokenisation and the deterministic transforms, cached once) then epochs of ``train#dataloader``
(the random augmentations and collation, 2 worker processes); the consumption side is the bundle's
network, loss and optimiser running training steps on one of those batches.

    python -m benchmarks.data_pipeline [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from monai.bundle import ConfigParser

from benchmarks.common import median_seconds, parse_args, write_results
from benchmarks.train_step import QUICK_SHAPES, make_step
from monai_mlip.bundle import synthetic_dataset

TRAIN_CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "mlip_pretrain" / "configs" / "train.json"


def bundle_parser(bundle_root: Path, dataset_dir: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(TRAIN_CONFIG))
    parser.update({"bundle_root": str(bundle_root), "dataset_dir": dataset_dir, **overrides})
    return parser


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    studies, image_size, epochs = (24, 64, 1) if args.quick else (400, 256, 3)
    overrides = {"num_workers": 2, "batch_size": 32}
    if args.quick:
        overrides.update(batch_size=4, model_overrides=QUICK_SHAPES["tiny"]["overrides"])
    with tempfile.TemporaryDirectory() as tmp:
        dataset_dir = synthetic_dataset("mimic", n=studies, seed=0, image_size=image_size, root=Path(tmp) / "data")
        parser = bundle_parser(Path(tmp) / "bundle", dataset_dir, **overrides)
        start = time.perf_counter()
        dataset = parser.get_parsed_content("train#dataset")
        cache_s = time.perf_counter() - start
        loader = parser.get_parsed_content("train#dataloader")
        epoch_rates = []
        for _ in range(epochs):
            start, images = time.perf_counter(), 0
            for batch in loader:
                images += len(batch["image"])
            epoch_rates.append(images / (time.perf_counter() - start))
        batch = next(iter(loader))
        step = make_step(parser.get_parsed_content("network"), parser.get_parsed_content("loss"), None, batch)
        step_s = median_seconds(step, args.rounds)
    loader_rate = max(epoch_rates[1:] or epoch_rates)  # the first epoch also starts the worker processes
    consumed_rate = len(batch["image"]) / step_s
    print(f"loader {loader_rate:.0f} img/s, training consumes {consumed_rate:.0f} img/s")
    detail = {
        "what": "images/s of the bundle's train loader (2 workers, cached) vs images/s of its training step",
        "studies": studies,
        "train_images": len(dataset),
        "source_image_size": image_size,
        "cache_images_per_s": len(dataset) / cache_s,
        "loader_images_per_s_per_epoch": epoch_rates,
        "loader_images_per_s": loader_rate,
        "batch_size": len(batch["image"]),
        "train_step_s": step_s,
        "consumed_images_per_s": consumed_rate,
    }
    write_results(args.out, "data_pipeline", detail, {"loader_over_consumption": loader_rate / consumed_rate})


if __name__ == "__main__":
    main()
