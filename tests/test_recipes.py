"""Named objectives: each recipe builds and trains a step at tiny size, builds nothing for a term that is off,
and the pre-training bundle takes one by name."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
from monai.bundle import ConfigParser

from monai_mlip.data import TagConceptsd
from monai_mlip.handlers import UnmaskedTuning
from monai_mlip.losses import Objective, Recipe, build_objective, get_recipe, list_recipes
from monai_mlip.networks import build_tiny_text_model, create_mlip
from tests.test_trainer import REPORTS, batches

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TRAIN_JSON = os.path.join(os.path.dirname(__file__), "..", "bundles", "mlip_pretrain", "configs", "train.json")
EXPECTED = {"clip", "mlip", "mlip_no_ot", "mlip_no_sie", "mlip_no_mip", "mlip_no_mask", "mlip_kg", "mmclip"}


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return build_tiny_text_model(REPORTS * 10, tmp_path_factory.mktemp("text"), vocab_size=300, min_frequency=1)


def _build(recipe: Recipe, text_dir) -> tuple[torch.nn.Module, Objective]:
    loss = build_objective(recipe)
    torch.manual_seed(0)
    settings = {"image_size": 32, "vision_kwargs": {"depth": 1}, "max_sentences": 4}
    model = create_mlip("tiny", text_model=text_dir, **settings, **loss.model_heads(), **recipe.model_settings())
    return model, loss


def tagged_batch(model: torch.nn.Module, loss: Objective) -> dict:
    """A batch of the four reports with what ``loss`` needs beyond the tokens (the tagged concepts)."""
    batch = batches(model, 1)[0]
    if loss.batch_keys():
        tag = TagConceptsd("report", model.tokenizer)
        items = [tag({"report": r, "sentence_index": batch["sentence_index"][i]}) for i, r in enumerate(REPORTS)]
        batch.update({key: torch.stack([item[key] for item in items]) for key in loss.batch_keys()})
    return batch


def forward(model: torch.nn.Module, loss: Objective, batch: dict, extra: tuple[str, ...] = ()):
    kwargs = {key: batch[key] for key in (*loss.batch_keys(), *extra)}
    return model(batch["image"], batch["input_ids"], batch["attention_mask"], batch["sentence_index"], **kwargs)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_recipe_trains_a_step_and_every_parameter_it_built_learns(name, text_dir):
    recipe = get_recipe(name)
    model, loss = _build(recipe, text_dir)
    model.train()
    terms = loss(forward(model, loss, tagged_batch(model, loss)))
    assert {key for key in terms if key.startswith("loss_")} == {f"loss_{term}" for term in recipe.terms}
    terms["loss"].backward()
    without = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert without == []  # what DDP without find_unused_parameters needs


def test_a_term_that_is_off_builds_nothing(text_dir):
    clip, _ = _build(get_recipe("clip"), text_dir)
    assert clip.sie is None and clip.decoder is None and clip.local_logit_scale is None and clip.mask_ratio == 0.0
    full, _ = _build(get_recipe("mlip"), text_dir)
    assert full.sie is not None and full.decoder is not None and full.local_logit_scale is not None
    assert sum(p.numel() for p in clip.parameters()) < sum(p.numel() for p in full.parameters())
    no_mask, _ = _build(get_recipe("mlip_no_mask"), text_dir)
    assert no_mask.mask_ratio == 0.0 and no_mask.sie is None and no_mask.local_logit_scale is not None


def test_a_recipe_can_be_a_json_file(tmp_path, text_dir):
    path = tmp_path / "mine.json"
    path.write_text('{"name": "mine", "terms": {"global": 1.0, "local": 0.5}, "mask_ratio": 0.0, "grounding": "ot"}')
    recipe = get_recipe(str(path))
    assert recipe.terms == {"global": 1.0, "local": 0.5} and not recipe.sie
    model, loss = _build(recipe, text_dir)
    assert loss.weights == {"global": 1.0, "local": 0.5} and model.decoder is None and model.mask_ratio == 0.0
    path.write_text('{"name": "mine", "terms": {"global": 1.0}, "lambda": 2}')
    with pytest.raises(ValueError, match=r"unknown recipe field\(s\) \['lambda'\]"):
        get_recipe(str(path))


def test_recipes_are_listed_and_checked():
    assert set(list_recipes()) == EXPECTED
    with pytest.raises(ValueError, match=r"unknown recipe 'mgca'.*clip"):
        get_recipe("mgca")
    with pytest.raises(ValueError, match="need a masked view"):
        Recipe("broken", {"global": 1.0, "mip": 1.0}, mask_ratio=0.0)
    with pytest.raises(ValueError, match=r"unknown \['lokal'\]"):
        Recipe("typo", {"global": 1.0, "lokal": 1.0})


@pytest.mark.parametrize("name", ["clip", "mlip", "mlip_no_ot"])
def test_the_bundle_takes_a_recipe_by_name(name):
    parser = ConfigParser()
    parser.read_config(TRAIN_JSON)
    parser["recipe"] = name
    parser["model_overrides"] = {}
    recipe = get_recipe(name)
    loss = parser.get_parsed_content("loss")
    assert loss.weights == dict(recipe.terms) and (loss.weighting is not None) == recipe.sie
    if "local" in recipe.terms:
        assert loss.terms["local"].epsilon == parser.get_parsed_content("term_settings#local#epsilon")
    settings = parser.get_parsed_content("model_settings")
    assert settings == {**loss.model_heads(), **recipe.model_settings()}


def test_unmasked_tuning_runs_the_last_epochs_on_whole_images_with_every_part_in_the_graph(text_dir):
    model, loss = _build(get_recipe("mlip"), text_dir)
    tuning = UnmaskedTuning(model, epochs=1)
    engine = SimpleNamespace(state=SimpleNamespace(epoch=1, max_epochs=3))
    for epoch, expected in ((1, 0.25), (2, 0.25), (3, 0.0), (2, 0.25)):  # the last a resumed run's
        engine.state.epoch = epoch
        tuning(engine)
        assert model.mask_ratio == expected
    engine.state.epoch = 3
    tuning(engine)
    model.train()
    output = forward(model, loss, tagged_batch(model, loss))
    assert output.visible.all() and output.mip_pred.shape[1] == 0
    loss(output)["loss"].backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []  # as DDP needs
    with pytest.raises(ValueError, match="epochs"):
        UnmaskedTuning(model, epochs=-1)
