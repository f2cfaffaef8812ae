"""Real scale: the preparation step's speed, and a data pipeline whose memory and start-up stay flat.

1. ``prepare_over_naive_decode``: images/s of :func:`monai_mlip.prepare.prepare_image` (JPEG DCT-domain
   reduction, then area resizing, PNG out) over the naive way, the full decode and resize the bundle's
   loader does today (``read_cxr`` to float32, MONAI's area ``Resize``) with the same PNG write; one
   process, the same full-size (2,544 x 3,056, 1.5-2 MB) grey JPGs of the real-size synthetic layout.
   The detail also gives the ratio over a full Pillow decode with Pillow's area resize (no DCT
   reduction), the narrowest baseline.
2. ``pipeline_rss_ratio_240k_over_2k4``, ``first_batch_s_ratio_240k_over_2k4``,
   ``manifest_build_s_ratio_240k_over_2k4``: the pre-training bundle with the prepared data preset
   (``configs/data/mimic_cxr_prepared.json``) on a prepared index of 240,000 studies against one of 2,400,
   each in a fresh process: the manifest build, then the bundle's ``train#dataloader`` (2 workers) through
   its first batches. The two indexes point at the same pool of prepared 512 px images, so they differ in
   size only. Resident memory is the proportional set size (Linux ``smaps_rollup``) of the main process
   and its loader workers after the first batches, so the pages the forked workers share with it count once.

    python -m benchmarks.real_scale [--quick]
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from monai.transforms import Resize
from PIL import Image

from benchmarks.common import paired_seconds, parse_args, synthetic_reports, write_results
from monai_mlip.data import read_cxr
from monai_mlip.prepare import prepare_image, write_prepared_columns
from monai_mlip.synthetic import REAL_SIZE, write_real_size_mimic

REPO = Path(__file__).resolve().parents[1]
FULL = REAL_SIZE
FIRST_BATCHES = 5


def full_size_jpgs(root: Path, count: int) -> list[Path]:
    """``count`` distinct full-size JPGs from :func:`~monai_mlip.synthetic.write_real_size_mimic`."""
    layout = write_real_size_mimic(root / "layout", studies=count, pool=count)
    return sorted(layout.glob("_pool/large/*.jpg"))


def naive_prepare(source: Path, target: Path, longest_side: int = 512) -> None:
    """The bundle loader's full decode (``read_cxr``) and area resize (MONAI), then the same PNG write."""
    pixels, _ = read_cxr(source)
    resized = Resize(longest_side, size_mode="longest", mode="area")(torch.from_numpy(pixels)[None])[0]
    Image.fromarray(np.round(resized.numpy() * 255).astype(np.uint8)).save(target, format="PNG", compress_level=1)


def pillow_full_prepare(source: Path, target: Path, longest_side: int = 512) -> None:
    """A full Pillow decode with Pillow's area resize (no DCT-domain reduction), then the same PNG write."""
    with Image.open(source) as image:
        image.load()
        scale = longest_side / max(image.size)
        resized = image.convert("L").resize((round(image.width * scale), round(image.height * scale)), Image.BOX)
    resized.save(target, format="PNG", compress_level=1)


def prepare_speed(root: Path, count: int, rounds: int) -> dict:
    sources = full_size_jpgs(root, count)
    out = root / "out"
    out.mkdir()

    def prepared() -> None:
        for number, source in enumerate(sources):
            target = out / f"p{number}.png"
            target.unlink(missing_ok=True)  # no resumption shortcut: every image is decoded
            prepare_image(source, target)

    def naive() -> None:
        for number, source in enumerate(sources):
            naive_prepare(source, out / f"n{number}.png")

    def pillow_full() -> None:
        for number, source in enumerate(sources):
            pillow_full_prepare(source, out / f"f{number}.png")

    prepared_s, naive_s = paired_seconds(prepared, naive, rounds)
    prepared_again_s, pillow_s = paired_seconds(prepared, pillow_full, rounds)
    return {
        "images": count,
        "source_size": FULL,
        "source_mb": sum(p.stat().st_size for p in sources) / count / 1e6,
        "prepare_images_per_s": count / prepared_s,
        "naive_images_per_s": count / naive_s,
        "prepare_over_naive_decode": naive_s / prepared_s,
        "pillow_full_decode_images_per_s": count / pillow_s,
        "prepare_over_pillow_full_decode": pillow_s / prepared_again_s,
        "prepared_png_kb": sum(p.stat().st_size for p in out.glob("p*.png")) / count / 1e3,
    }


def write_index(root: Path, studies: int, pool: list[str], reports: list[str]) -> None:
    """A prepared index of ``studies`` one-image studies pointing into ``pool`` (2 % validation)."""
    rng = np.random.default_rng(0)
    with gzip.open(root / "index.jsonl.gz", "wt", encoding="utf-8") as handle:
        for number in range(studies):
            subject, study = f"1{number:07d}", f"5{number:07d}"
            labels = rng.choice([None, 0.0, 1.0, -1.0], size=14).tolist()
            record = {
                "subject_id": subject,
                "study_id": study,
                "split": "validate" if number % 50 == 0 else "train",
                "labels": labels,
                "sections": {"impression": reports[number % len(reports)]},
                "report": {"sections": ["impression", "findings"], "text": reports[number % len(reports)]},
                "images": [
                    {
                        "dicom_id": f"{number:08x}-a",
                        "view": "PA",
                        "image": pool[number % len(pool)],
                        "original_size": list(FULL),
                        "size": [426, 512],
                    }
                ],
            }
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")


def measure_pipeline(index_dir: str, text_model: str, bundle_root: str, batch_size: int) -> dict:
    """In this (fresh) process: manifest build, then the loader through its first batches."""
    from monai_mlip.bundle import bundle_workflow

    configs = REPO / "bundles" / "mlip_pretrain" / "configs"
    preset = str(REPO / "configs" / "data" / "mimic_cxr_prepared.json")
    start = time.perf_counter()
    workflow = bundle_workflow(
        configs, ["train.json", preset], bundle_root, dataset_dir=index_dir, text_model=text_model,
        batch_size=batch_size, num_workers=2, grounding_csv="/nonexistent",
    )  # fmt: skip
    manifest = workflow.parser.get_parsed_content("train_manifest")
    manifest_s = time.perf_counter() - start
    loader = workflow.parser.get_parsed_content("train#dataloader")
    batches = iter(loader)
    next(batches)
    first_batch_s = time.perf_counter() - start
    for _ in range(FIRST_BATCHES - 1):
        next(batches)
    workers = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return {
        "train_images": len(manifest),
        "manifest_s": manifest_s,
        "first_batch_s": first_batch_s,
        "main_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "pipeline_pss_gb": sum(_pss_kb(pid) for pid in [str(os.getpid()), *workers]) / 2**20,
        "loader_workers": len(workers),
    }


def _pss_kb(pid: str) -> int:
    """Proportional set size of a process (shared pages divided among the processes that share them): the
    pages a forked loader worker still shares with its parent are not counted twice."""
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if not rollup.is_file():
        return 0
    line = next((line for line in rollup.read_text().splitlines() if line.startswith("Pss:")), "")
    return int(line.split()[1]) if line else 0


def scale_rows(root: Path, sizes: tuple[int, int], batch_size: int) -> list[dict]:
    from monai_mlip.networks import build_tiny_text_model

    reports = synthetic_reports(60, root / "reports")
    text_model = str(build_tiny_text_model(reports * 5, root / "text", vocab_size=1000, min_frequency=1))
    pool_dir = root / "pool"
    pool_dir.mkdir()
    pool = []
    for number, source in enumerate(full_size_jpgs(root, 4)):
        prepare_image(source, pool_dir / f"{number}.png")
        pool.append(f"pool/{number}.png")
    rows = []
    for studies in sizes:
        index_dir = root / f"index_{studies}"
        index_dir.mkdir()
        (index_dir / "pool").symlink_to(pool_dir)
        write_index(index_dir, studies, pool, reports)
        write_prepared_columns(index_dir)  # as the preparation step does after its index
        command = [sys.executable, "-m", "benchmarks.real_scale", "--child", str(index_dir), text_model,
                   str(root / f"bundle_{studies}"), str(batch_size)]  # fmt: skip
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"the {studies}-study pipeline failed:\n{result.stderr[-3000:]}")
        rows.append({"studies": studies, **json.loads(result.stdout.strip().splitlines()[-1])})
        print(rows[-1])
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        index_dir, text_model, bundle_root, batch_size = sys.argv[2:6]
        print(json.dumps(measure_pipeline(index_dir, text_model, bundle_root, int(batch_size))))
        return
    args = parse_args(__doc__.splitlines()[0])
    count, sizes, batch = (2, (240, 2400), 8) if args.quick else (12, (2400, 240_000), 32)
    with tempfile.TemporaryDirectory() as tmp:
        speed = prepare_speed(Path(tmp) / "speed", count, args.rounds) if (Path(tmp) / "speed").mkdir() is None else {}
        rows = scale_rows(Path(tmp) / "scale", sizes, batch)
    small, large = rows
    headline = {
        "prepare_over_naive_decode": speed["prepare_over_naive_decode"],
        "pipeline_rss_ratio_240k_over_2k4": large["pipeline_pss_gb"] / small["pipeline_pss_gb"],
        "first_batch_s_ratio_240k_over_2k4": large["first_batch_s"] / small["first_batch_s"],
        "manifest_build_s_ratio_240k_over_2k4": large["manifest_s"] / small["manifest_s"],
    }
    if args.quick:  # the quick sizes are 240 and 2,400: the keys say what the full run measures
        headline = {f"quick_{key}": value for key, value in headline.items()}
    detail = {"what": __doc__.splitlines()[0], "prepare": speed, "pipeline": rows, "first_batches": FIRST_BATCHES}
    write_results(args.out, "real_scale", detail, headline)


if __name__ == "__main__":
    main()
