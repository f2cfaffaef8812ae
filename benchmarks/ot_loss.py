"""Local OT loss: the batched patch-sentence loss against a per-pair POT loop computing the same thing.

Both compute the ``[B, B]`` similarities ``S_ij = sum(T_ij * cos) - eps KL(T_ij || a b^T)`` of every image with every
report (entropic OT, log domain, same epsilon, iteration cap and tolerance; plan held constant for the gradient,
as the library does), then the symmetric InfoNCE over them, forward and backward. The batched side is
``monai_mlip.losses.patch_sentence_similarity`` (one ``ot.solve_batch`` call); the reference solves the
``B * B`` problems one at a time with ``ot.sinkhorn(method="sinkhorn_log")`` on torch tensors.

    python -m benchmarks.ot_loss [--quick]
"""

from __future__ import annotations

import ot
import torch

from benchmarks.common import paired_seconds, parse_args, write_results
from monai_mlip.losses import contrastive_loss, patch_sentence_similarity

EPSILON, MAX_ITER, TOL = 0.05, 100, 1e-5
SCALE = 1 / 0.07


def make_batch(batch: int, patches: int, sentences: int, dim: int, seed: int = 0):
    """Random embeddings with 1..``sentences`` real sentences per report (at least one report is full)."""
    generator = torch.Generator().manual_seed(seed)
    patch_embeds = torch.randn(batch, patches, dim, generator=generator, requires_grad=True)
    sentence_embeds = torch.randn(batch, sentences, dim, generator=generator, requires_grad=True)
    counts = torch.randint(1, sentences + 1, (batch,), generator=generator)
    counts[0] = sentences
    sentence_mask = torch.arange(sentences)[None] < counts[:, None]
    patch_mask = torch.ones(batch, patches, dtype=torch.bool)
    return patch_embeds, patch_mask, sentence_embeds, sentence_mask


def batched_similarity(patch_embeds, patch_mask, sentence_embeds, sentence_mask) -> torch.Tensor:
    return patch_sentence_similarity(
        patch_embeds, patch_mask, sentence_embeds, sentence_mask, epsilon=EPSILON, max_iter=MAX_ITER, tol=TOL
    )


def per_pair_similarity(patch_embeds, patch_mask, sentence_embeds, sentence_mask) -> torch.Tensor:
    """The same similarities, one POT problem per (image, report) pair over its real items only."""
    patches = torch.nn.functional.normalize(patch_embeds, dim=-1)
    sentences = torch.nn.functional.normalize(sentence_embeds, dim=-1)
    rows = []
    for i in range(len(patches)):
        image = patches[i][patch_mask[i]]
        row = []
        for j in range(len(sentences)):
            report = sentences[j][sentence_mask[j]]
            cos = image @ report.t()
            a = torch.full((len(image),), 1 / len(image))
            b = torch.full((len(report),), 1 / len(report))
            plan = ot.sinkhorn(a, b, 1 - cos.detach(), EPSILON, method="sinkhorn_log", numItermax=MAX_ITER, stopThr=TOL)
            positive = plan > 0
            kl = (plan[positive] * (plan[positive] / torch.outer(a, b)[positive]).log()).sum()
            row.append((plan * cos).sum() - EPSILON * kl)
        rows.append(torch.stack(row))
    return torch.stack(rows)


def loss_step(similarity_fn, inputs) -> float:
    """Forward and backward of the symmetric InfoNCE over the similarities; returns the loss."""
    for tensor in inputs[0], inputs[2]:
        tensor.grad = None
    loss = contrastive_loss(SCALE * similarity_fn(*inputs))
    loss.backward()
    return float(loss)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    sizes = [4, 8] if args.quick else [8, 16, 32, 64]
    patches, sentences, dim = (16, 4, 16) if args.quick else (98, 16, 128)
    rows = []
    for batch in sizes:
        inputs = make_batch(batch, patches, sentences, dim)
        batched_loss, reference_loss = loss_step(batched_similarity, inputs), loss_step(per_pair_similarity, inputs)
        with torch.no_grad():
            difference = (batched_similarity(*inputs) - per_pair_similarity(*inputs)).abs().max().item()
        rounds = args.rounds if batch <= 32 else max(1, args.rounds // 2)
        batched, reference = paired_seconds(
            lambda inputs=inputs: loss_step(batched_similarity, inputs),
            lambda inputs=inputs: loss_step(per_pair_similarity, inputs),
            rounds,
        )
        rows.append(
            {
                "batch": batch,
                "batched_s": batched,
                "per_pair_s": reference,
                "speedup": reference / batched,
                "max_similarity_difference": difference,
                "batched_loss": batched_loss,
                "per_pair_loss": reference_loss,
            }
        )
        print(f"batch {batch}: batched {batched:.3f} s, per pair {reference:.3f} s, x{reference / batched:.1f}")
    speedup_b32 = next((row["speedup"] for row in rows if row["batch"] == 32), None)
    detail = {
        "what": "patch-sentence OT loss, forward + backward: one batched POT solve vs a per-pair POT loop",
        "patches": patches,
        "max_sentences": sentences,
        "dim": dim,
        "epsilon": EPSILON,
        "max_iter": MAX_ITER,
        "rows": rows,
    }
    write_results(args.out, "ot_loss", detail, {"ot_speedup_b32": speedup_b32})


if __name__ == "__main__":
    main()
