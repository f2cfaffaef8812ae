"""Training step: one full MLIP step against a CLIP step with the same towers and batch.

MLIP step: half of the patches masked, global + local OT + MIP losses with SIE weighting, backward,
gradient clipping, AdamW step. CLIP step: no masking, the global contrastive loss only, the same
backward and optimiser step. Two shapes: the ``tiny`` preset (batch 32, the bundle's default) and
ViT-B/16 + BERT-base (random init, 224 px, batch 8 on the CPU). Reports are real synthetic reports,
tokenised as the bundle does; images are random (the cost does not depend on pixel values). Also the
MLIP step on the same images as a MONAI ``MetaTensor`` (what MONAI transforms return) against a plain
tensor (what the bundle's ``ToTensord(track_meta=False)`` hands the trainer): every operation on a
``MetaTensor`` goes through its ``__torch_function__``.

    python -m benchmarks.train_step [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from monai.data import MetaTensor

from benchmarks.common import paired_seconds, parse_args, synthetic_reports, write_results
from monai_mlip.data import TokenizeReportd
from monai_mlip.losses import Objective, build_objective
from monai_mlip.networks import MLIP, build_tiny_text_model, create_mlip

BERT_BASE = {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072}
SHAPES = {
    "tiny": {"preset": "tiny", "text": {}, "overrides": {}, "batch": 32},
    "base": {"preset": "paper", "text": BERT_BASE, "overrides": {"vision_weights": None}, "batch": 8},
}
QUICK_SHAPES = {
    "tiny": {
        "preset": "tiny",
        "text": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64},
        "overrides": {"image_size": 32, "vision_kwargs": {"embed_dim": 32, "depth": 2, "num_heads": 2}},
        "batch": 4,
    }
}


def make_batch(model: MLIP, text_dir: Path, reports: list[str], batch: int) -> dict[str, torch.Tensor]:
    tokenize = TokenizeReportd("report", str(text_dir), max_length=128, max_sentences=model.text.max_sentences)
    items = [tokenize({"report": report}) for report in reports[:batch]]
    tokens = {key: torch.stack([torch.as_tensor(item[key]) for item in items]) for key in items[0] if key != "report"}
    size = model.vision.image_size
    image = torch.randn(batch, 1, size, size, generator=torch.Generator().manual_seed(0))
    return {"image": image, **tokens}


def make_step(model: MLIP, loss_fn: Objective, mask_ratio: float, batch: dict[str, torch.Tensor]):
    """A training step as ``MLIPTrainer`` runs it: forward, loss, backward, clipping, AdamW."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        output = model(
            batch["image"], batch["input_ids"], batch["attention_mask"], batch["sentence_index"], mask_ratio=mask_ratio
        )
        loss = loss_fn(output)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        return float(loss)

    return step


def compare(name: str, shape: dict, reports: list[str], workdir: Path, rounds: int) -> dict:
    text_dir = build_tiny_text_model(reports, workdir / f"text_{name}", **shape["text"])
    model = create_mlip(shape["preset"], text_model=text_dir, **shape["overrides"]).train()
    batch = make_batch(model, text_dir, reports, shape["batch"])
    mlip = make_step(model, build_objective("mlip"), model.mask_ratio, batch)
    clip = make_step(model, build_objective("clip"), 0.0, batch)
    mlip_s, clip_s = paired_seconds(mlip, clip, rounds)
    print(f"{name}: MLIP step {mlip_s:.3f} s, CLIP step {clip_s:.3f} s, ratio {mlip_s / clip_s:.2f}")
    meta = make_step(model, build_objective("mlip"), model.mask_ratio, {**batch, "image": MetaTensor(batch["image"])})
    meta_s, plain_s = paired_seconds(meta, mlip, rounds)
    print(f"{name}: MLIP step on a MetaTensor {meta_s:.3f} s, on a tensor {plain_s:.3f} s ({meta_s / plain_s:.2f})")
    return {
        "batch": shape["batch"],
        "image_size": model.vision.image_size,
        "mask_ratio": model.mask_ratio,
        "parameters": sum(p.numel() for p in model.parameters()),
        "mlip_step_s": mlip_s,
        "clip_step_s": clip_s,
        "mlip_over_clip": mlip_s / clip_s,
        "metatensor_step_s": meta_s,
        "tensor_step_s": plain_s,
        "metatensor_over_tensor": meta_s / plain_s,
    }


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    shapes = QUICK_SHAPES if args.quick else SHAPES
    with tempfile.TemporaryDirectory() as tmp:
        reports = synthetic_reports(max(shape["batch"] for shape in shapes.values()) * 4, Path(tmp))
        results = {name: compare(name, shape, reports, Path(tmp), args.rounds) for name, shape in shapes.items()}
    headline = {}
    for name, result in results.items():
        headline[f"mlip_over_clip_step_{name}"] = result["mlip_over_clip"]
        headline[f"metatensor_over_tensor_step_{name}"] = result["metatensor_over_tensor"]
    what = "one MLIP training step over one CLIP step, same towers and batch; MetaTensor over plain images"
    detail = {"what": what, "shapes": results}
    write_results(args.out, "train_step", detail, headline)


if __name__ == "__main__":
    main()
