"""GPU: images per second of the pre-training step in bf16 at the paper preset, and model FLOP utilisation.

ViT-B/16 + BERT-base (random init; the cost does not depend on the weights), 224 px, mask 0.5, all losses,
AdamW. FLOPs of one step are counted with ``torch.utils.flop_counter.FlopCounterMode`` (matrix products
and attention, forward and backward); MFU = FLOPs per second / the device's dense bf16 peak. Skipped
without a GPU. ``--quick`` runs tiny shapes on whatever device there is (no MFU on a CPU).

    python -m benchmarks.gpu_step [--quick]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import parse_args, synthetic_reports, write_results
from benchmarks.train_step import BERT_BASE, QUICK_SHAPES, make_batch, make_step
from monai_mlip.losses import build_objective
from monai_mlip.networks import build_tiny_text_model, create_mlip

# dense bf16 tensor-core peaks from the vendors' data sheets (SXM parts), FLOP/s
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def peak_flops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for model, peak in PEAK_BF16.items() if model in name), None)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    if not torch.cuda.is_available() and not args.quick:
        print("no GPU: skipped")
        return
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    quick = QUICK_SHAPES["tiny"]
    batch_size, steps = (quick["batch"], 2) if args.quick else (64, 20)
    with tempfile.TemporaryDirectory() as tmp:
        reports = synthetic_reports(batch_size * 2, Path(tmp))
        if args.quick:
            text_dir = build_tiny_text_model(reports, Path(tmp) / "text", **quick["text"])
            model = create_mlip("tiny", text_model=text_dir, **quick["overrides"])
        else:
            text_dir = build_tiny_text_model(reports, Path(tmp) / "text", **BERT_BASE)
            model = create_mlip("paper", text_model=text_dir, vision_weights=None)
        model = model.to(device).train()
        batch = {key: value.to(device) for key, value in make_batch(model, text_dir, reports, batch_size).items()}
    step = make_step(model, build_objective("mlip"), None, batch)

    def bf16_step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return step()

    bf16_step()  # warm-up
    with FlopCounterMode(display=False) as counter:
        bf16_step()
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        bf16_step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    step_s = (time.perf_counter() - start) / steps
    peak = peak_flops(device)
    mfu = flops / step_s / peak if peak else None
    images_per_s = batch_size / step_s
    print(f"{images_per_s:.1f} images/s, {flops / 1e12:.2f} TFLOP per step, MFU {mfu}")
    detail = {
        "what": "bf16 pre-training step at the paper preset (ViT-B/16 + BERT-base, 224 px, mask 0.5)",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch_size": batch_size,
        "step_s": step_s,
        "images_per_s": images_per_s,
        "flops_per_step": flops,
        "peak_bf16_flops": peak,
        "mfu": mfu,
    }
    write_results(args.out, "gpu_step", detail, {"gpu_images_per_s": images_per_s, "gpu_mfu": mfu})


if __name__ == "__main__":
    main()
