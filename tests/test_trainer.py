"""The MLIP trainer's step: logit scales kept in range, non-finite gradients skipped, parameter groups,
and savers that refuse non-finite weights."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math

import pytest
import torch
from ignite.engine import Events
from monai.engines import PrepareBatchExtraInput

from monai_mlip.data import split_sentences, tokenize_sentences
from monai_mlip.engines import MLIPTrainer
from monai_mlip.errors import NonFiniteWeightsError
from monai_mlip.handlers import AtomicCheckpointSaver, FinalModelSaver
from monai_mlip.losses import build_objective
from monai_mlip.networks import build_tiny_text_model, create_mlip
from monai_mlip.optim import mlip_param_groups

REPORTS = [
    "No acute cardiopulmonary process. Heart size is normal.",
    "Small left pleural effusion. Mild pulmonary edema.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Endotracheal tube in place. No pneumothorax.",
]
MODEL_ARGS = {"image_size": 32, "vision_kwargs": {"depth": 1}, "max_sentences": 4}


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return build_tiny_text_model(REPORTS * 10, tmp_path_factory.mktemp("text"), vocab_size=300, min_frequency=1)


def make_model(text_dir, **overrides):
    torch.manual_seed(0)
    return create_mlip("tiny", text_model=text_dir, **{**MODEL_ARGS, **overrides})


def batches(model, count: int = 2) -> list[dict]:
    tokens = [tokenize_sentences(split_sentences(r), model.tokenizer, 40, max_sentences=4) for r in REPORTS]
    batch = {key: torch.stack([t[key] for t in tokens]) for key in tokens[0]}
    batch["image"] = torch.randn(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    batch["study_id"] = ["s1", "s2", "s3", "s4"]
    return [batch] * count


def make_trainer(model, data, lr: float = 1e-3, **kwargs) -> MLIPTrainer:
    extra = {key: key for key in ("input_ids", "attention_mask", "sentence_index")}
    return MLIPTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=data,
        network=model,
        optimizer=torch.optim.AdamW(mlip_param_groups(model, lr, 0.05), lr=lr),
        loss_function=build_objective("mlip"),
        prepare_batch=PrepareBatchExtraInput(extra),
        **kwargs,
    )


def test_logit_scale_pushed_past_the_bound_comes_back(text_dir):
    """The stored scale is clamped after the step, and its gradient stays alive at the bound."""
    model = make_model(text_dir, max_logit_scale=100.0)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(400.0))
        model.local_logit_scale.fill_(-1.0)
    trainer = make_trainer(model, batches(model, 1))
    trainer.run()
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))
    assert model.local_logit_scale.item() == pytest.approx(0.0)
    # at the bound the scale still gets a gradient, so an optimiser can move it back inside
    output = model.train()(**{k: v for k, v in batches(model, 1)[0].items() if k != "study_id"})
    build_objective("mlip")(output)["loss"].backward()
    assert model.logit_scale.grad.abs() > 0 and model.local_logit_scale.grad.abs() > 0


def test_nonfinite_gradient_skips_the_step_and_is_counted(text_dir):
    """A finite loss whose backward yields NaN in one parameter's gradient must not touch the weights."""
    model = make_model(text_dir)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.image_projection.weight.register_hook(lambda grad: torch.full_like(grad, float("nan")))
    trainer = make_trainer(model, batches(model, 3))
    outputs = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: outputs.append(dict(e.state.output)))
    trainer.run()
    assert trainer.state.nonfinite_steps == 3
    assert all(math.isfinite(o["loss"]) and math.isnan(o["grad_norm"]) for o in outputs)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.detach(), before[name], msg=name)


def test_too_many_nonfinite_steps_stop_the_run(text_dir):
    from monai_mlip.errors import NonFiniteLossError

    model = make_model(text_dir)
    model.image_projection.weight.register_hook(lambda grad: torch.full_like(grad, float("inf")))
    with pytest.raises(NonFiniteLossError, match="gradient norm"):
        make_trainer(model, batches(model, 3), max_nonfinite_steps=1).run()


def test_finite_steps_report_the_gradient_norm(text_dir):
    model = make_model(text_dir)
    trainer = make_trainer(model, batches(model, 1))
    trainer.run()
    assert trainer.state.nonfinite_steps == 0 and trainer.state.output["grad_norm"] > 0


def test_parameter_groups_keep_tokens_scales_and_phi_out_of_weight_decay(text_dir):
    model = make_model(text_dir, vision_kwargs={"depth": 1, "class_token": True, "global_pool": "token"})
    groups = mlip_param_groups(model, 1e-3, 0.05, text_lr_scale=0.1)
    names = {id(p): name for name, p in model.named_parameters()}
    decayed = {names[id(p)] for g in groups if g["weight_decay"] for p in g["params"]}
    for name in (
        "vision.trunk.pos_embed",
        "vision.trunk.cls_token",
        "decoder.mask_token",
        "logit_scale",
        "local_logit_scale",
        "sie.phi.weight",
        "image_projection.weight",
    ):
        assert name in names.values(), name
    assert decayed.isdisjoint(
        {"vision.trunk.pos_embed", "vision.trunk.cls_token", "decoder.mask_token", "logit_scale", "sie.phi.weight"}
    )
    assert "image_projection.weight" in decayed and "vision.trunk.blocks.0.attn.qkv.weight" in decayed
    assert not any(name.endswith(".bias") or "norm" in name for name in decayed)
    # every parameter in exactly one group; the text tower at a tenth of the learning rate
    grouped = [names[id(p)] for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(names.values())
    for group in groups:
        text = {names[id(p)].startswith("text.") for p in group["params"]}
        assert len(text) == 1
        assert group["lr"] == pytest.approx(1e-4 if text.pop() else 1e-3)


@pytest.mark.parametrize("saver", ["final", "checkpoint"])
def test_savers_refuse_nonfinite_weights(text_dir, tmp_path, saver):
    model = make_model(text_dir)
    trainer = make_trainer(model, batches(model, 1))
    with torch.no_grad():
        model.vision.trunk.blocks[0].mlp.fc1.weight[0, 0] = float("nan")
    if saver == "final":
        handler = FinalModelSaver(model, tmp_path / "model.pt")
    else:
        handler = AtomicCheckpointSaver(tmp_path, {"model": model, "optimizer": trainer.optimizer})
    with pytest.raises(NonFiniteWeightsError, match=r"blocks\.0\.mlp\.fc1\.weight"):
        handler(trainer)
    assert list(tmp_path.iterdir()) == []


def test_items_dropped_by_the_loader_are_added_up(text_dir):
    model = make_model(text_dir)
    data = [{**batch, "skipped_items": count} for batch, count in zip(batches(model, 2), (2, 1), strict=True)]
    trainer = make_trainer(model, data)
    trainer.run()
    assert trainer.state.skipped_items == 3
