"""The knowledge-guided (``mlip_kg``) and MMCLIP (``mmclip``) recipes: the knowledge file and concept tagging,
each new term's value, shape and gradient, the attention mask, entity masking, unpaired data, the teacher."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
import torch
from torch.nn import functional as F

from monai_mlip.data import (
    CHEXPERT_LABELS,
    LoadCXRd,
    disease_prompt,
    image_only_items,
    load_knowledge,
    mix_unpaired,
    report_only_items,
    split_sentences,
)
from monai_mlip.errors import KnowledgeFileError
from monai_mlip.inferers import GroundingInferer
from monai_mlip.losses import build_objective, contrastive_loss, get_recipe
from monai_mlip.losses.divergence import DivergenceDistillation
from monai_mlip.losses.knowledge import KnowledgeCategoryContrast, TokenKnowledgePatch
from monai_mlip.losses.mlm import EntityMLM
from monai_mlip.networks import build_tiny_text_model, create_mlip
from monai_mlip.networks.mlm import mask_entity_tokens
from tests.test_recipes import forward, tagged_batch
from tests.test_reports import _iu_reports
from tests.test_trainer import REPORTS, batches

os.environ.setdefault("HF_HUB_OFFLINE", "1")
SMALL = {"image_size": 32, "vision_kwargs": {"depth": 1}, "max_sentences": 4}


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return build_tiny_text_model(REPORTS * 10, tmp_path_factory.mktemp("text"), vocab_size=300, min_frequency=1)


def recipe_model(name: str, text_dir, **overrides):
    loss = build_objective(name)
    torch.manual_seed(0)
    settings = {**SMALL, **loss.model_heads(), **get_recipe(name).model_settings(), **overrides}
    return create_mlip("tiny", text_model=text_dir, **settings), loss


# --- the knowledge file and the tagging of concepts -------------------------------------------------------


def test_the_knowledge_file_covers_the_chexpert_observations():
    knowledge = load_knowledge()
    assert set(CHEXPERT_LABELS) <= set(knowledge.names)
    for concept in knowledge.concepts:
        assert (
            concept.synonyms and concept.definition and concept.locations and concept.category in knowledge.categories
        )
    assert len(knowledge.category_of()) == len(knowledge.concepts)


def test_a_broken_knowledge_file_is_named(tmp_path):
    with pytest.raises(KnowledgeFileError, match="not found"):
        load_knowledge(tmp_path / "none.json")
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"categories": {"a": "x"}, "negation_cues": [], "concepts": [{"name": "X"}]}))
    with pytest.raises(KnowledgeFileError, match=r"broken.json.*'synonyms'"):
        load_knowledge(broken)
    broken.write_text(json.dumps({"categories": {}, "negation_cues": [], "concepts": [
        {"name": "X", "synonyms": [], "definition": "", "locations": [], "category": "b"}]}))  # fmt: skip
    with pytest.raises(KnowledgeFileError, match="unknown category 'b'"):
        load_knowledge(broken)


def test_mentions_negation_and_no_finding():
    knowledge = load_knowledge()
    names = knowledge.names
    mentions = knowledge.mentions("No pleural effusion or pneumothorax.")
    assert [(names[m.concept], m.negated) for m in mentions] == [("Pleural Effusion", True), ("Pneumothorax", True)]
    # the longest synonym wins ("pleural effusion", not "effusion"); hedged mentions are asserted
    labels = knowledge.asserted(["Hazy opacity may represent early pneumonia.", "Small left pleural effusion."])
    assert {names[i] for i, v in enumerate(labels) if v} == {"Lung Opacity", "Pneumonia", "Pleural Effusion"}
    assert knowledge.asserted(["Lungs are clear without focal consolidation."]) == [
        int(name == "No Finding") for name in names
    ]
    # "No Finding" only when nothing else is asserted, whatever the report says about the lungs
    both = knowledge.asserted(["The lungs are clear.", "Moderate right pneumothorax."])
    assert both[names.index("No Finding")] == 0 and both[names.index("Pneumothorax")] == 1


def test_tagging_marks_the_tokens_of_each_mention(text_dir):
    model, _ = recipe_model("mlip_kg", text_dir)
    tokenizer = model.tokenizer
    batch = tagged_batch(model, build_objective("mlip_kg"))
    knowledge = load_knowledge()
    for row in range(len(REPORTS)):
        tagged = batch["concept_index"][row]
        words = {
            knowledge.names[c]: tokenizer.decode(batch["input_ids"][row][tagged == c])
            for c in tagged.unique()
            if c >= 0
        }
        for name, text in words.items():
            concept = knowledge.concepts[knowledge.names.index(name)]
            assert any(text.replace(" ", "") in t.lower().replace(" ", "") for t in (name, *concept.synonyms)), text
    # "Small left pleural effusion. Mild pulmonary edema.": two concepts tagged and asserted
    assert {knowledge.names[c] for c in batch["concept_index"][1].unique().tolist() if c >= 0} == {
        "Pleural Effusion",
        "Edema",
    }
    assert batch["concept_labels"][1][knowledge.names.index("Edema")] == 1


def test_real_reports_name_concepts():
    """Real Indiana University reports (torchxrayvision's copy): most name a concept, and findings are tagged."""
    knowledge = load_knowledge()
    reports = [r.get("IMPRESSION", "") + " " + r.get("FINDINGS", "") for r in _iu_reports()[:400]]
    reports = [r for r in reports if r.strip()]
    named = [any(knowledge.mentions(s) for s in split_sentences(r)) for r in reports]
    assert sum(named) / len(reports) > 0.8
    labels = torch.tensor([knowledge.asserted(split_sentences(r)) for r in reports])
    assert labels[:, knowledge.names.index("Cardiomegaly")].sum() > 5 and labels[:, 0].sum() > 50


# --- terms ------------------------------------------------------------------------------------------------


def _knowledge_output(batch: int = 4, concepts: int = 3, seed: int = 0) -> SimpleNamespace:
    g = torch.Generator().manual_seed(seed)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, generator=g), dim=-1).requires_grad_(True)

    mask = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.bool)[:batch, :concepts]
    return SimpleNamespace(
        image_embeds=unit(batch, 8),
        text_embeds=unit(batch, 8),
        patch_embeds=unit(batch, 5, 8),
        concept_embeds=unit(batch, concepts, 8),
        concept_mask=mask,
        concept_labels=mask.float(),
        concept_categories=torch.tensor([0, 0, 1]),
        knowledge_embeds=unit(concepts, 8),
        knowledge_logit_scale=torch.tensor(10.0, requires_grad=True),
        logit_scale=torch.tensor(10.0, requires_grad=True),
    )


def test_token_knowledge_patch_contrasts_mentions_with_images():
    out = _knowledge_output()
    result = TokenKnowledgePatch()(out)
    assert result.loss.ndim == 0 and result.stats["mentions"] == 5
    result.loss.backward()
    for name in ("concept_embeds", "knowledge_embeds", "patch_embeds", "knowledge_logit_scale"):
        assert getattr(out, name).grad.abs().sum() > 0, name
    # a query whose own image holds a patch equal to it, and the others not, is matched
    matched = _knowledge_output()
    queries, owner = TokenKnowledgePatch().queries(matched)
    patches = torch.randn(4, 5, 8) * 0.01
    for query, image in zip(queries.detach(), owner.tolist(), strict=True):
        patches[image, 0] += query
    matched.patch_embeds = F.normalize(patches, dim=-1)
    assert TokenKnowledgePatch()(matched).loss < result.loss
    none = _knowledge_output()
    none.concept_mask = torch.zeros(4, 3, dtype=torch.bool)
    empty = TokenKnowledgePatch()(none)
    assert empty.loss == 0 and empty.loss.requires_grad


@pytest.mark.parametrize("level", ["concept", "category"])
def test_category_contrast_pulls_samples_to_the_prototypes_of_their_findings(level):
    out = _knowledge_output()
    term = KnowledgeCategoryContrast(level=level)
    prototypes, targets = term.prototypes_and_targets(out)
    assert prototypes.shape == ((3, 8) if level == "concept" else (2, 8)) and targets.shape[0] == 4
    assert torch.allclose(targets[:3].sum(1), torch.ones(3)) and targets[3].sum() == 0  # row 3 asserts nothing
    loss = term(out).loss
    loss.backward()
    assert out.image_embeds.grad.abs().sum() > 0 and out.knowledge_embeds.grad.abs().sum() > 0
    aligned = _knowledge_output()
    with torch.no_grad():
        pulled = F.normalize(targets @ prototypes.detach(), dim=-1)
        aligned.image_embeds = aligned.text_embeds = torch.where(
            targets.sum(1, keepdim=True) > 0, pulled, aligned.image_embeds
        )
    assert term(aligned).loss < loss


def test_divergence_with_a_sharp_teacher_on_the_pairs_is_infonce():
    out = _knowledge_output()
    out.teacher_image_embeds, out.teacher_text_embeds = torch.eye(4, 8), torch.eye(4, 8)
    term = DivergenceDistillation(teacher_scale=1000.0)
    result = term(out)
    expected = contrastive_loss(out.logit_scale * out.image_embeds @ out.text_embeds.t())
    torch.testing.assert_close(result.loss, expected)
    assert result.stats["teacher_top1"] == 1.0
    result.loss.backward()
    assert out.image_embeds.grad.abs().sum() > 0


def test_entity_mlm_is_the_cross_entropy_of_the_masked_tokens():
    logits = torch.randn(5, 11, requires_grad=True)
    labels = torch.tensor([3, 1, -100, 7, 0])
    result = EntityMLM()(SimpleNamespace(mlm_logits=logits, mlm_labels=labels))
    torch.testing.assert_close(result.loss, F.cross_entropy(logits, labels, ignore_index=-100))
    placeholder = EntityMLM()(SimpleNamespace(mlm_logits=logits, mlm_labels=torch.full((5,), -100)))
    assert placeholder.loss == 0 and placeholder.loss.requires_grad


# --- model parts --------------------------------------------------------------------------------------------


def test_entity_masking_hits_the_knowledge_terms(text_dir):
    model, loss = recipe_model("mmclip", text_dir)
    batch = tagged_batch(model, loss)
    masked, labels = mask_entity_tokens(
        batch["input_ids"], batch["attention_mask"], batch["concept_index"], model.tokenizer.mask_token_id, 1.0, 0.0
    )
    entity = batch["concept_index"] >= 0
    assert entity.any() and torch.equal(labels != -100, entity)
    assert (masked[entity] == model.tokenizer.mask_token_id).all() and torch.equal(
        masked[~entity], batch["input_ids"][~entity]
    )
    terms = {t.lower() for c in load_knowledge().concepts for t in (c.name, *c.synonyms)}
    words = set(model.tokenizer.decode(batch["input_ids"][entity]).split())
    assert all(any(word in term.split() for term in terms) for word in words), words
    # other tokens: never [CLS], [SEP] or padding
    _, others = mask_entity_tokens(batch["input_ids"], batch["attention_mask"], batch["concept_index"], 4, 0.0, 1.0)
    chosen = others != -100
    assert not chosen[:, 0].any() and not (chosen & (batch["attention_mask"] == 0)).any()
    special = torch.tensor(model.tokenizer.all_special_ids)
    assert torch.equal(chosen, ~entity & (batch["attention_mask"] == 1) & ~torch.isin(batch["input_ids"], special))


def _hidden(output) -> list[set[int]]:
    return [set(row.tolist()) for row in output.masked_index]


def test_the_attention_mask_hides_the_most_attended_patches(text_dir):
    model, loss = recipe_model("mmclip", text_dir)
    model.train()
    batch = tagged_batch(model, loss)
    output = forward(model, loss, batch)
    attention = output.attention_map
    assert attention.shape == (4, model.vision.num_patches) and torch.allclose(attention.sum(1), torch.ones(4))
    hidden = output.masked_index.shape[1]
    assert hidden == model.vision.num_patches - int(model.vision.num_patches * (1 - model.mask_ratio))
    top = attention.topk(hidden, dim=1).indices
    assert _hidden(output) == [set(row.tolist()) for row in top]  # share 1.0: the most-attended, exactly
    # the contrastive terms read the whole image beside the masked view (contrastive_view="whole")
    assert output.visible.all() and output.patch_embeds.shape[1] == model.vision.num_patches
    half, _ = recipe_model("mmclip", text_dir, attention_share=0.5)
    half.train()
    out = forward(half, loss, batch)
    top = out.attention_map.topk(round(0.5 * hidden), dim=1).indices
    assert all(set(t.tolist()) <= h for t, h in zip(top, _hidden(out), strict=True))
    # on the masked view (MLIP's way) the contrastive terms see the same patches the decoder misses
    masked_view, _ = recipe_model("mmclip", text_dir, contrastive_view="masked")
    masked_view.train()
    out = forward(masked_view, loss, batch)
    assert [set(torch.nonzero(~row).flatten().tolist()) for row in out.visible] == _hidden(out)
    # the attention comes from the whole image and the report's words, without gradients
    manual = model.report_attention(
        model.vision.prepare_input(batch["image"]),
        model.text(batch["input_ids"], batch["attention_mask"]).token_features,
        batch["sentence_index"],
    )
    assert not manual.requires_grad and manual.shape == attention.shape


def test_an_unpaired_batch_trains(text_dir):
    model, loss = recipe_model("mmclip", text_dir)
    model.train()
    batch = tagged_batch(model, loss)
    has_image = torch.tensor([True, True, False, True])
    batch["image"][2] = 0.0
    output = forward(model, loss, {**batch, "has_image": has_image}, extra=("has_image",))
    terms = loss(output)
    keep = has_image
    expected = contrastive_loss(output.logit_scale * output.image_embeds[keep] @ output.text_embeds[keep].t())
    torch.testing.assert_close(terms["loss_global"], expected)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    assert loss.batch_keys(unpaired=True)[-1] == "has_image"
    with pytest.raises(ValueError, match="cannot train the term"):
        build_objective("mlip").batch_keys(unpaired=True)
    with pytest.raises(ValueError, match="reports without an image"):
        build_objective("mlip_no_mask")(SimpleNamespace(**{**vars(output), "local_logit_scale": torch.tensor(10.0)}))
    assert "loss_global" in build_objective("clip")(output)  # the global term leaves the report out


def test_the_unpaired_mix(tmp_path):
    paired = [{"image": f"{s}_{v}.jpg", "report": f"report {s}", "study_id": s} for s in range(10) for v in range(2)]
    images = image_only_items([{"image": "a.dcm", "patient_id": "p1", "label": 1}], {"Pneumonia": "label"})
    assert images[0]["report"] == "Findings consistent with pneumonia." and images[0]["has_image"]
    assert disease_prompt({"Pneumonia": 0, "Pneumothorax": 1}) == "No pneumonia. Findings consistent with pneumothorax."
    mixed = mix_unpaired(paired, images, report_only_items(["Free text."]), report_only_fraction=0.3, seed=1)
    report_only = [m for m in mixed if not m["has_image"]]
    assert len(report_only) == 3 + 1 and all(m["image"] is None for m in report_only)
    assert len([m for m in mixed if m["has_image"]]) == 14 + 1  # seven studies keep both images
    assert mixed == mix_unpaired(paired, images, report_only_items(["Free text."]), report_only_fraction=0.3, seed=1)
    blank = LoadCXRd("image", blank_size=16)({"image": None})["image"]
    assert blank.shape == (1, 16, 16) and blank.sum() == 0
    with pytest.raises(Exception, match=r"None|NoneType|image"):
        LoadCXRd("image")({"image": None})


def test_the_divergence_encoder_is_an_average_that_follows_the_model(text_dir):
    model, loss = recipe_model("mlip_kg", text_dir, teacher_momentum=0.5)
    assert not any(p.requires_grad for p in model.teacher.parameters())
    student = model.image_projection.weight
    teacher = model.teacher.module["image_projection"].weight
    assert torch.equal(student, teacher)
    with torch.no_grad():
        student.add_(1.0)
    model.after_optimizer_step()  # the first update copies, later ones average
    model.after_optimizer_step()
    with torch.no_grad():
        student.add_(1.0)
    model.after_optimizer_step()
    torch.testing.assert_close(teacher, student - 0.5)
    model.eval()
    output = forward(model, loss, tagged_batch(model, loss))
    assert output.teacher_image_embeds is None and output.knowledge_embeds is not None
    model.train()


def test_attention_grounding_maps_sum_to_one_and_peak_where_the_phrase_is(text_dir):
    model, _ = recipe_model("mlip_kg", text_dir)
    model.eval()
    batch = batches(model, 1)[0]
    kwargs = {k: batch[k] for k in ("input_ids", "attention_mask", "sentence_index")}
    maps = GroundingInferer(method="attention", temperature=0.05)(batch["image"], model, **kwargs)
    assert maps["heatmap"].shape == (4, *model.vision.grid_size)
    torch.testing.assert_close(maps["heatmap"].sum((1, 2)), torch.ones(4))
    patches = model.encode_image_patches(batch["image"])
    phrase = model.encode_sentences(**kwargs).embeds[:, 0]
    best = (patches @ phrase.unsqueeze(-1)).squeeze(-1).argmax(1)
    assert torch.equal(maps["heatmap"].flatten(1).argmax(1), best)
    with pytest.raises(ValueError, match="method"):
        GroundingInferer(method="gradcam")
