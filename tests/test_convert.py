"""Conversion of the vision tower into MONAI's 2D ViT and UNETR encoder."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch
from monai.networks.nets import UNETR

from monai_mlip.networks import (
    ImageEncoder,
    VisionTower,
    adopt_patch_embedding,
    build_tiny_text_model,
    create_mlip,
    load_vit_weights,
    to_monai_vit,
    vit_state_dict_for_monai,
)
from monai_mlip.networks.convert import block_places

SMALL = {"embed_dim": 32, "depth": 12, "num_heads": 2}  # UNETR always has 12 blocks
TOL = {"atol": 1e-5, "rtol": 1e-4}


def trained_like(tower: VisionTower) -> VisionTower:
    """Perturb every parameter so that no mapping error hides behind default initial values."""
    torch.manual_seed(0)
    with torch.no_grad():
        for param in tower.parameters():
            param.add_(torch.randn_like(param) * 0.05)
        for name, buffer in tower.named_buffers():  # BatchNorm statistics, where a stem has them
            if name.endswith("running_mean"):
                buffer.add_(torch.randn_like(buffer) * 0.05)
            elif name.endswith("running_var"):
                buffer.mul_(1 + torch.rand_like(buffer) * 0.2)
    return tower.eval()


GAP_LAYOUT = {"image_size": 64, "class_token": False, "global_pool": "avg", "fc_norm": False, **SMALL}


def small_unetr(img_size: int = 32, out_channels: int = 1, **kwargs) -> UNETR:
    """A 2D ``UNETR`` of width 32 with 2 heads (its 12 blocks are fixed)."""
    return UNETR(
        in_channels=1,
        out_channels=out_channels,
        img_size=img_size,
        hidden_size=32,
        mlp_dim=128,
        num_heads=2,
        spatial_dims=2,
        qkv_bias=True,
        **kwargs,
    )


@pytest.fixture(scope="module")
def gap_tower() -> VisionTower:
    """The tiny preset's layout: no class token, average pooling, final LayerNorm on the tokens."""
    return trained_like(VisionTower("vit_tiny_patch16_224", **GAP_LAYOUT))


@pytest.fixture(scope="module")
def cls_tower() -> VisionTower:
    """The paper preset's layout (class token, token pooling) with RGB weights."""
    return trained_like(VisionTower("vit_base_patch16_224", image_size=64, in_chans=3, **SMALL))


def test_key_mapping(gap_tower):
    vit = to_monai_vit(gap_tower)
    mapped, unused = vit_state_dict_for_monai(
        {f"vision.trunk.{k}": v for k, v in gap_tower.trunk.state_dict().items()}, vit
    )
    assert unused == []
    assert set(mapped) == {key for key in vit.state_dict() if ".norm_cross_attn." not in key}
    trunk = gap_tower.trunk.state_dict()
    pairs = {
        "blocks.3.attn.qkv.weight": "blocks.3.attn.qkv.weight",
        "blocks.3.attn.out_proj.bias": "blocks.3.attn.proj.bias",
        "blocks.0.mlp.linear1.weight": "blocks.0.mlp.fc1.weight",
        "blocks.11.mlp.linear2.bias": "blocks.11.mlp.fc2.bias",
        "blocks.5.norm2.weight": "blocks.5.norm2.weight",
        "norm.bias": "norm.bias",
        "patch_embedding.patch_embeddings.weight": "patch_embed.proj.weight",
        "patch_embedding.position_embeddings": "pos_embed",
    }
    for monai_key, timm_key in pairs.items():
        assert torch.equal(mapped[monai_key], trunk[timm_key]), monai_key
    assert all(m.eps == 1e-6 for m in vit.modules() if isinstance(m, torch.nn.LayerNorm))


@pytest.mark.parametrize(
    "model", ["vit_tiny_patch16_224", "vit_conv_stem_patch16", "vit_pooled_stem_patch16", "vit_resnet_stem_patch16"]
)
def test_monai_vit_reproduces_the_tower_patch_features(gap_tower, model):
    tower = gap_tower if model == "vit_tiny_patch16_224" else trained_like(VisionTower(model, **GAP_LAYOUT))
    vit = to_monai_vit(tower).eval()
    image = torch.randn(3, 1, 64, 64)
    with torch.no_grad():
        expected = tower(image).patch_features
        features, hidden = vit(image)
    assert features.shape == expected.shape == (3, 16, 32) and len(hidden) == 12
    torch.testing.assert_close(features, expected, **TOL)


def test_class_token_tower_with_grey_input_and_rgb_weights(cls_tower):
    vit = to_monai_vit(cls_tower, in_channels=1).eval()  # RGB stem summed over channels
    torch.testing.assert_close(
        vit.patch_embedding.patch_embeddings.weight, cls_tower.trunk.patch_embed.proj.weight.sum(1, keepdim=True)
    )
    torch.testing.assert_close(
        vit.cls_token, cls_tower.trunk.cls_token + cls_tower.trunk.pos_embed[:, :1]
    )  # MONAI adds no position to its class token
    grey = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        expected = cls_tower(grey)  # the tower repeats grey to its 3 channels
        cls_features, hidden = vit(grey)
        patches = vit.norm(hidden[-1])[:, 1:]
    torch.testing.assert_close(patches, expected.patch_features, **TOL)
    torch.testing.assert_close(cls_features, expected.global_features, **TOL)


def test_unetr_encoder_from_an_mlip_state_dict(tmp_path):
    text_dir = build_tiny_text_model(["No effusion. Heart normal."] * 5, tmp_path, vocab_size=100, min_frequency=1)
    mlip = create_mlip("tiny", text_model=text_dir, image_size=32, vision_kwargs={"embed_dim": 32, "num_heads": 2})
    trained_like(mlip.vision)
    unetr = small_unetr(out_channels=2, feature_size=8).eval()
    with pytest.raises(ValueError, match="adopt_patch_embedding"):  # the tiny tower has a convolutional stem
        load_vit_weights(unetr.vit, mlip.state_dict())
    adopt_patch_embedding(unetr.vit, mlip.vision)
    result = load_vit_weights(unetr.vit, mlip.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    stem = mlip.vision.trunk.patch_embed.backbone.state_dict()
    for key, value in unetr.vit.patch_embedding.patch_embeddings.state_dict().items():
        torch.testing.assert_close(value, stem[key])
    image = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(unetr.vit(image)[0], mlip.vision(image).patch_features, **TOL)
        assert unetr(image).shape == (2, 2, 32, 32)


def test_block_places():
    assert block_places(12, 12) == list(range(12))
    assert block_places(4, 12) == [2, 5, 8, 11]
    assert block_places(6, 12) == [1, 3, 5, 7, 9, 11]
    assert block_places(14, 12) == list(range(12))


def test_a_shallower_tower_fills_unetr_with_identity_blocks():
    tower = trained_like(VisionTower("vit_tiny_patch16_224", **{**GAP_LAYOUT, "image_size": 32, "depth": 4}))
    unetr = small_unetr()
    result = load_vit_weights(unetr.vit, tower.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    image = torch.randn(2, 1, 32, 32)
    trunk = tower.trunk
    with torch.no_grad():
        features, hidden = unetr.eval().vit(image)
        torch.testing.assert_close(features, tower(image).patch_features, **TOL)
        tokens = trunk._pos_embed(trunk.patch_embed(image))
        outputs = []
        for block in trunk.blocks:
            tokens = block(tokens)
            outputs.append(tokens)
    # UNETR's skips (hidden_states_out[3], [6], [9]) are the outputs of the tower's blocks 0, 1 and 2
    for skip, depth in ((3, 0), (6, 1), (9, 2)):
        torch.testing.assert_close(hidden[skip], outputs[depth], **TOL)
    # the identity blocks train: their output projections get gradients
    unetr.train()
    unetr(image).sum().backward()
    assert unetr.vit.blocks[0].attn.out_proj.weight.grad.abs().sum() > 0
    assert unetr.vit.blocks[0].mlp.linear2.weight.grad.abs().sum() > 0


def test_unetr_at_another_size_and_from_a_class_token_tower(cls_tower):
    unetr = small_unetr(img_size=48)
    result = load_vit_weights(unetr.vit, {f"module.trunk.{k}": v for k, v in cls_tower.trunk.state_dict().items()})
    assert result.missing_keys == [] and result.unexpected_keys == ["cls_token"]  # UNETR has no class token
    assert unetr.vit.patch_embedding.position_embeddings.shape == (1, 9, 32)  # 4 x 4 resampled to 3 x 3 (patch 16)


@pytest.mark.parametrize(
    ("kwargs", "reported"),
    [
        ({"init_values": 1e-5}, r"ls1\.gamma"),  # LayerScale
        ({"pre_norm": True}, r"norm_pre\.weight"),
        ({"class_token": False, "global_pool": "avg"}, r"fc_norm\.weight"),  # timm's default pooled-feature norm
        ({"reg_tokens": 2}, "reg_token"),
    ],
)
def test_towers_without_a_monai_equivalent_are_refused(kwargs, reported):
    with pytest.raises(ValueError, match=reported):
        to_monai_vit(VisionTower("vit_tiny_patch16_224", image_size=32, **SMALL, **kwargs))


def test_mismatched_inputs_are_refused(gap_tower):
    unetr = UNETR(in_channels=1, out_channels=1, img_size=64, hidden_size=32, mlp_dim=128, num_heads=2, spatial_dims=2)
    patch8 = VisionTower("vit_tiny_patch16_224", image_size=64, patch_size=8, **SMALL)
    with pytest.raises(ValueError, match="patch size"):
        load_vit_weights(unetr.vit, patch8.state_dict())
    with pytest.raises(ValueError, match="one timm ViT"):
        load_vit_weights(to_monai_vit(gap_tower), {})


def test_image_encoder_loads_a_whole_mlip_state_dict(tmp_path):
    text_dir = build_tiny_text_model(["No effusion. Heart normal."] * 5, tmp_path, vocab_size=100, min_frequency=1)
    kwargs = {"image_size": 32, "vision_kwargs": {"embed_dim": 32, "num_heads": 2}}
    trained, fresh = (create_mlip("tiny", text_model=text_dir, **kwargs).eval() for _ in range(2))
    trained_like(trained.vision)
    encoder = ImageEncoder.from_mlip(fresh)
    encoder.load_state_dict(trained.state_dict())  # text tower, decoder and SIE entries are not its own
    image = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(encoder(image), ImageEncoder.from_mlip(trained)(image))
    partial = {k: v for k, v in trained.state_dict().items() if not k.startswith("image_projection")}
    with pytest.raises(RuntimeError, match="image_projection"):
        encoder.load_state_dict(partial)
