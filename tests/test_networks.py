"""MLIP model: output shapes and dtypes, masking, sentence pooling, SIE, MIP, gradients to every part."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math

import pytest
import torch
from torch.nn import functional as F

from monai_mlip.data import split_sentences, tokenize_sentences
from monai_mlip.losses import build_objective
from monai_mlip.networks import (
    MLIP,
    MLIPOutput,
    VisionTower,
    build_tiny_text_model,
    create_mlip,
    patchify,
    pool_sentences,
    random_patch_mask,
)

REPORTS = [
    "No acute cardiopulmonary process. Heart size is normal.",
    "Small left pleural effusion. Mild pulmonary edema. Lungs otherwise clear.",
    "Right lower lobe consolidation concerning for pneumonia.",
    "Endotracheal tube terminates 3 cm above the carina. No pneumothorax. Stable cardiomegaly.",
]


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    return build_tiny_text_model(REPORTS * 20, tmp_path_factory.mktemp("tiny_bert"), vocab_size=300, min_frequency=1)


@pytest.fixture(scope="module")
def model(text_dir) -> MLIP:
    torch.manual_seed(0)
    return create_mlip("tiny", text_model=text_dir).eval()


def make_batch(model: MLIP, batch_size: int = 4, max_length: int = 48) -> dict[str, torch.Tensor]:
    items = [
        tokenize_sentences(split_sentences(REPORTS[i % len(REPORTS)]), model.tokenizer, max_length)
        for i in range(batch_size)
    ]
    batch = {key: torch.stack([item[key] for item in items]) for key in items[0]}
    size = model.vision.image_size
    batch["image"] = torch.randn(batch_size, 1, size, size, generator=torch.Generator().manual_seed(1))
    return batch


def test_tiny_preset_sizes(model):
    vision = model.vision
    assert (vision.image_size, vision.patch_size, vision.grid_size, vision.num_patches) == (128, 16, (8, 8), 64)
    assert (vision.embed_dim, len(vision.trunk.blocks), vision.trunk.blocks[0].attn.num_heads) == (128, 4, 4)
    assert not vision.trunk.has_class_token and vision.trunk.global_pool == "avg"
    assert vision.in_chans == 1 and model.embed_dim == 128
    assert model.text.hidden_size == 128 and model.text.max_length == 128
    assert model.config.image_size == 128


def test_forward_shapes_and_dtypes(model):
    batch = make_batch(model)
    with torch.no_grad():
        out = model(**batch, mask_ratio=0.5, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, MLIPOutput)
    b, d, p, n, s, k = 4, 128, 64, 32, model.text.max_sentences, 16 * 16
    expected = {
        "image_embeds": ((b, d), torch.float32),
        "text_embeds": ((b, d), torch.float32),
        "patch_embeds": ((b, n, d), torch.float32),
        "patch_index": ((b, n), torch.long),
        "visible": ((b, p), torch.bool),
        "sentence_embeds": ((b, s, d), torch.float32),
        "sentence_mask": ((b, s), torch.bool),
        "integrity": ((b,), torch.float32),
        "patch_scores": ((b, n), torch.float32),
        "mip_pred": ((b, p - n, k), torch.float32),
        "mip_target": ((b, p - n, k), torch.float32),
        "masked_index": ((b, p - n), torch.long),
        "logit_scale": ((), torch.float32),
        "local_logit_scale": ((), torch.float32),
    }
    for name, (shape, dtype) in expected.items():
        value = getattr(out, name)
        assert tuple(value.shape) == shape and value.dtype == dtype, name
    for name in ("image_embeds", "text_embeds", "patch_embeds"):
        torch.testing.assert_close(getattr(out, name).norm(dim=-1), torch.ones(getattr(out, name).shape[:-1]))
    real = out.sentence_embeds.norm(dim=-1)
    torch.testing.assert_close(real[out.sentence_mask], torch.ones(int(out.sentence_mask.sum())))
    assert (real[~out.sentence_mask] == 0).all()
    # sentence counts follow the reports (2, 3, 1, 3 sentences)
    assert out.sentence_mask.sum(1).tolist() == [2, 3, 1, 3]
    # visible / patch_index / masked_index describe the same partition of the grid
    assert torch.equal(out.visible.gather(1, out.patch_index), torch.ones(b, n, dtype=torch.bool))
    assert not out.visible.gather(1, out.masked_index).any()
    assert torch.equal(torch.cat([out.patch_index, out.masked_index], 1).sort(1).values, torch.arange(p).expand(b, p))
    # SIE starts at w = 1; logit scales start at MaCo's 1 / 0.03
    torch.testing.assert_close(out.integrity, torch.ones(b))
    torch.testing.assert_close(out.logit_scale, torch.tensor(1 / 0.03))
    torch.testing.assert_close(out.local_logit_scale, torch.tensor(1 / 0.03))
    # MIP target = per-patch-normalised pixels of the hidden patches
    target = patchify(batch["image"], 16).gather(1, out.masked_index.unsqueeze(-1).expand(-1, -1, k))
    torch.testing.assert_close(out.mip_target, target)


def test_eval_mode_does_not_mask_and_encoders_agree(model):
    batch = make_batch(model)
    with torch.no_grad():
        out = model(**batch)  # eval mode, mask_ratio=None -> 0
        assert out.visible.all() and out.mip_pred.shape == (4, 0, 256)
        torch.testing.assert_close(model.encode_image(batch["image"]), out.image_embeds)
        torch.testing.assert_close(model.encode_image_patches(batch["image"]), out.patch_embeds)
        text = model.encode_text(batch["input_ids"], batch["attention_mask"])
        torch.testing.assert_close(text, out.text_embeds)
        sentences = model.encode_sentences(batch["input_ids"], batch["attention_mask"], batch["sentence_index"])
        torch.testing.assert_close(sentences.embeds, out.sentence_embeds)
        assert torch.equal(sentences.mask, out.sentence_mask)
    assert model.phi_map().shape == (8, 8)


def test_training_mode_uses_configured_ratio(model):
    batch = make_batch(model)
    model.train()
    try:
        with torch.no_grad():
            out = model(**batch)
    finally:
        model.eval()
    assert out.visible.sum(1).tolist() == [int(64 * (1 - model.mask_ratio))] * 4


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.75, 0.9])
def test_masking_keeps_requested_ratio(ratio):
    index = random_patch_mask(6, 64, ratio, generator=torch.Generator().manual_seed(3))
    assert index.shape == (6, int(64 * (1 - ratio)))
    assert torch.equal(index, index.sort(1).values)
    assert all(len(set(row.tolist())) == index.shape[1] for row in index)


def test_masking_is_reproducible_with_a_seed(model):
    batch = make_batch(model)
    with torch.no_grad():
        a = model(**batch, mask_ratio=0.5, generator=torch.Generator().manual_seed(7))
        b = model(**batch, mask_ratio=0.5, generator=torch.Generator().manual_seed(7))
        c = model(**batch, mask_ratio=0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.patch_index, b.patch_index) and torch.equal(a.image_embeds, b.image_embeds)
    assert not torch.equal(a.patch_index, c.patch_index)
    assert not torch.equal(a.patch_index[0], a.patch_index[1])  # per-sample masks
    with pytest.raises(ValueError, match="mask_ratio"):
        random_patch_mask(2, 64, 1.0)


def test_encoder_sees_only_visible_patches(model):
    """Changing hidden pixels leaves the masked encoding unchanged; changing a visible patch changes it."""
    batch = make_batch(model, batch_size=1)
    noise = torch.rand(1, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(**batch, mask_ratio=0.5, mask_noise=noise)
        hidden = int(out.masked_index[0, 0])
        visible = int(out.patch_index[0, 0])
        for patch, changes in ((hidden, False), (visible, True)):
            image = batch["image"].clone()
            row, col = divmod(patch, 8)
            image[..., row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] += 5.0
            other = model(**{**batch, "image": image}, mask_ratio=0.5, mask_noise=noise)
            assert torch.allclose(other.image_embeds, out.image_embeds) != changes


def test_gradients_reach_towers_projections_phi_and_decoder(model):
    batch = make_batch(model)
    model.zero_grad()
    out = model(**batch, mask_ratio=0.5, generator=torch.Generator().manual_seed(0))
    build_objective("mlip")(out)["loss"].backward()
    parts = {
        "vision stem": next(model.vision.trunk.patch_embed.backbone.parameters()),  # its first convolution
        "vision first block": model.vision.trunk.blocks[0].attn.qkv.weight,
        "text embeddings": model.text.model.embeddings.word_embeddings.weight,
        "text last layer": next(model.text.model.encoder.layer[-1].parameters()),
        "image projection": model.image_projection.weight,
        "text projection": model.text_projection.weight,
        "phi": model.sie.phi.weight,
        "decoder": model.decoder.pred.weight,
        "mask token": model.decoder.mask_token,
        "logit scale": model.logit_scale,
        "local logit scale": model.local_logit_scale,
    }
    for name, param in parts.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    model.zero_grad()


def test_pool_sentences_is_the_mean_of_each_sentence():
    states = torch.randn(2, 6, 3)
    index = torch.tensor([[-1, 0, 0, 1, 5, -1], [-1, 1, 1, 1, -1, -1]])
    features, mask = pool_sentences(states, index, max_sentences=3)
    torch.testing.assert_close(features[0, 0], states[0, 1:3].mean(0))
    torch.testing.assert_close(features[0, 1], states[0, 3])
    torch.testing.assert_close(features[1, 1], states[1, 1:4].mean(0))
    assert mask.tolist() == [[True, True, False], [False, True, False]]  # sentence 5 is beyond max_sentences
    assert (features[~mask] == 0).all()


def test_text_tower_skips_padding_columns(model):
    batch = make_batch(model)
    padded = {k: F.pad(batch[k], (0, 40), value=v) for k, v in (("input_ids", 0), ("attention_mask", 0))}
    padded["sentence_index"] = F.pad(batch["sentence_index"], (0, 40), value=-1)
    with torch.no_grad():
        short = model.text(batch["input_ids"], batch["attention_mask"], batch["sentence_index"])
        long = model.text(**padded)
    assert long.token_features.shape[1] == int(batch["attention_mask"].sum(1).max())
    torch.testing.assert_close(long.sentence_features, short.sentence_features)
    torch.testing.assert_close(long.global_features, short.global_features)


def test_sie_weight_and_phi_map(model):
    sie = model.sie
    visible = torch.rand(5, 64) > 0.5
    torch.testing.assert_close(sie(visible), torch.ones(5))  # w = 1 for every mask at init
    assert math.isclose(float(F.softplus(sie.phi.bias.detach())), 1.0, rel_tol=1e-6)
    with torch.no_grad():
        phi = torch.randn(64)
        saved = sie.phi.weight.clone()
        sie.phi.weight.copy_(phi)
        try:
            expected = F.softplus(visible.float() @ phi + sie.phi.bias)
            torch.testing.assert_close(sie(visible), expected)
            torch.testing.assert_close(sie.phi_map(), phi.reshape(8, 8))
            index = torch.tensor([[0, 9, 63]])
            torch.testing.assert_close(sie.patch_scores(index), phi[index])
        finally:
            sie.phi.weight.copy_(saved)


def test_patchify_normalises_each_patch():
    image = torch.randn(2, 1, 32, 32) * 3 + 7
    patches = patchify(image, 8)
    assert patches.shape == (2, 16, 64)
    torch.testing.assert_close(patches.mean(-1), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(patches.var(-1), torch.ones(2, 16), atol=1e-3, rtol=0)
    raw = patchify(image, 8, normalize=False)
    torch.testing.assert_close(raw[0, 1], image[0, 0, 0:8, 8:16].reshape(-1))  # row-major grid, row-major pixels


def test_grey_input_to_rgb_stem(text_dir):
    torch.manual_seed(0)
    model = create_mlip(
        "tiny", text_model=text_dir, in_chans=3, image_size=32, vision_kwargs={"depth": 1, "embed_dim": 32}
    ).eval()
    grey = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(grey), model.encode_image(grey.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match="expected an image"):
        model.encode_image(torch.randn(2, 2, 32, 32))


@pytest.mark.parametrize("model_name", ["vit_pooled_stem_patch16", "vit_resnet_stem_patch16"])
def test_stem_towers_hide_masked_patches(model_name):
    """A convolutional stem sees past its token's patch; the tower blanks hidden pixels so masking still hides them."""
    torch.manual_seed(0)
    tower = VisionTower(
        model_name, image_size=64, embed_dim=32, depth=1, num_heads=2, class_token=False, global_pool="avg"
    ).eval()
    assert tower.num_patches == 16 and tower.patch_size == 16
    image = torch.randn(2, 1, 64, 64)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = tower(image, mask_ratio=0.5, noise=noise)
        hidden = int(torch.nonzero(~out.visible[0])[0])
        visible = int(out.patch_index[0, 0])
        for patch, changes in ((hidden, False), (visible, True)):
            changed = image.clone()
            row, col = divmod(patch, 4)
            changed[0, :, row * 16 : (row + 1) * 16, col * 16 : (col + 1) * 16] += 5.0
            other = tower(changed, mask_ratio=0.5, noise=noise)
            assert torch.allclose(other.patch_features[0], out.patch_features[0], atol=1e-6) != changes


def test_sentences_past_max_sentences_shape_the_global_embedding_only(model):
    """Sentences past ``max_sentences`` are encoded (the global embedding sees them) but get no slot."""
    sentences = split_sentences(REPORTS[1] + " " + REPORTS[3])  # six sentences
    full = tokenize_sentences(sentences, model.tokenizer, 64, max_sentences=2)
    first_two = tokenize_sentences(sentences[:2], model.tokenizer, 64, max_sentences=2)
    assert full["attention_mask"].sum() > first_two["attention_mask"].sum()  # the later sentences are in the text
    assert set(full["sentence_index"].tolist()) == {-1, 0, 1}
    slots, model.text.max_sentences = model.text.max_sentences, 2
    try:
        with torch.no_grad():
            a, b = (
                model.encode_sentences(*(t[k][None] for k in ("input_ids", "attention_mask", "sentence_index")))
                for t in (full, first_two)
            )
            global_full, global_two = (
                model.encode_text(t["input_ids"][None], t["attention_mask"][None]) for t in (full, first_two)
            )
    finally:
        model.text.max_sentences = slots
    assert a.mask.tolist() == b.mask.tolist() == [[True, True]]
    assert not torch.allclose(global_full, global_two)


def test_parts_of_terms_that_are_off_are_not_built_or_run(text_dir):
    model = create_mlip("tiny", text_model=text_dir, use_local=False, use_sie=False, use_mip=False).train()
    assert model.local_logit_scale is None and model.sie is None and model.decoder is None
    assert model.phi_map() is None and model.no_weight_decay() == {"logit_scale", "vision.trunk.pos_embed"}
    output = model(**make_batch(model))
    assert output.integrity is None and output.patch_scores is None and output.mip_pred is None
    assert output.local_logit_scale is None
    losses = build_objective("clip")(output)
    losses["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())  # what DDP needs without find_unused_parameters
