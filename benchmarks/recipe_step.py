"""Training step of every recipe against the ``mlip`` step, with the same towers, batch and reports.

Each recipe builds the parts its terms need (:meth:`~monai_mlip.losses.Objective.model_heads`) on the
``tiny`` preset (batch 32, the bundle's default) and runs the step as ``MLIPTrainer`` does (forward with the
recipe's masking, its objective, backward, clipping, AdamW; then the model's ``after_optimizer_step``, which
moves ``mlip_kg``'s divergence encoder). Reports are real synthetic reports, tokenised and tagged with the
knowledge file's concepts as the bundle does; images are random.

    python -m benchmarks.recipe_step [--quick]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from benchmarks.common import paired_seconds, parse_args, synthetic_reports, write_results
from benchmarks.train_step import QUICK_SHAPES, SHAPES, make_batch
from monai_mlip.data import TagConceptsd
from monai_mlip.losses import build_objective, get_recipe, list_recipes
from monai_mlip.networks import build_tiny_text_model, create_mlip

REFERENCE = "mlip"


def recipe_step(name: str, shape: dict, text_dir: Path, reports: list[str]):
    """The training step of recipe ``name`` and its model's parameter count."""
    objective = build_objective(name)
    torch.manual_seed(0)
    settings = {**shape["overrides"], **objective.model_heads(), **get_recipe(name).model_settings()}
    model = create_mlip(shape["preset"], text_model=text_dir, **settings).train()
    batch = make_batch(model, text_dir, reports, shape["batch"])
    if objective.batch_keys():
        tag = TagConceptsd("report", model.tokenizer)
        items = [tag({"report": r, "sentence_index": batch["sentence_index"][i]}) for i, r in enumerate(reports)]
        batch.update({key: torch.stack([item[key] for item in items]) for key in objective.batch_keys()})
    extra = {key: batch[key] for key in objective.batch_keys()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        output = model(batch["image"], batch["input_ids"], batch["attention_mask"], batch["sentence_index"], **extra)
        loss = objective(output)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        model.after_optimizer_step()
        return float(loss)

    return step, sum(p.numel() for p in model.parameters() if p.requires_grad)


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    shape = (QUICK_SHAPES if args.quick else SHAPES)["tiny"]
    with tempfile.TemporaryDirectory() as tmp:
        reports = synthetic_reports(shape["batch"] * 4, Path(tmp))[: shape["batch"]]
        text_dir = build_tiny_text_model(reports * 4, Path(tmp) / "text", **shape["text"])
        reference, _ = recipe_step(REFERENCE, shape, text_dir, reports)
        rows = {}
        for name in list_recipes():
            step, parameters = recipe_step(name, shape, text_dir, reports)
            seconds, reference_s = paired_seconds(step, reference, args.rounds)
            rows[name] = {"step_s": seconds, "mlip_step_s": reference_s, "over_mlip": seconds / reference_s}
            rows[name]["trained_parameters"] = parameters
            print(f"{name}: {seconds:.3f} s a step, {seconds / reference_s:.2f} x the mlip step")
    headline = {f"{name}_over_mlip_step_tiny": row["over_mlip"] for name, row in rows.items() if name != REFERENCE}
    detail = {
        "what": "one training step of each recipe over one mlip step, tiny preset",
        "batch": shape["batch"],
        "rows": rows,
    }
    write_results(args.out, "recipe_step", detail, headline)


if __name__ == "__main__":
    main()
