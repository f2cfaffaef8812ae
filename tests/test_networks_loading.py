"""Loading pretrained towers offline: local files, the local cache (paper preset path), clear errors."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import random
from pathlib import Path

import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer

from monai_mlip.data import CXR_MEAN, CXR_STD, split_sentences, tokenize_sentences
from monai_mlip.errors import PretrainedNotFoundError
from monai_mlip.networks import PRESETS, VisionTower, build_tiny_text_model, create_mlip, list_presets

REPORTS = ["No acute cardiopulmonary process.", "Small left pleural effusion. Mild pulmonary edema."] * 10
TINY_VIT = {"embed_dim": 32, "depth": 2, "num_heads": 2}
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory) -> Path:
    return build_tiny_text_model(REPORTS, tmp_path_factory.mktemp("tiny_bert"), vocab_size=200, min_frequency=1)


@pytest.fixture
def empty_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def add_to_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """Lay files out as `hf download` leaves them in the Hugging Face cache."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


def save_timm_vit(path: Path, **kwargs) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(path))
    return state


def test_build_tiny_text_model_loads_like_a_hub_model(text_dir):
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= {
        p.name for p in text_dir.iterdir()
    }
    tokenizer = AutoTokenizer.from_pretrained(text_dir, local_files_only=True)
    model = AutoModel.from_pretrained(text_dir, local_files_only=True)
    assert tokenizer.cls_token_id == 2 and tokenizer.pad_token_id == 0 and tokenizer.model_max_length == 128
    assert model.config.hidden_size == 128 and model.config.num_hidden_layers == 2
    assert len(tokenizer) == model.config.vocab_size
    tokens = tokenize_sentences(split_sentences(REPORTS[1]), tokenizer, 32)
    assert tokens["sentence_index"].max() == 1
    assert tokenizer.unk_token_id not in tokens["input_ids"].tolist()  # the corpus vocabulary covers it


def test_tiny_text_model_is_reproducible(tmp_path):
    """Same reports and seed, same bytes: vocabulary (token ids) and weights."""
    words = [
        "left",
        "right",
        "upper",
        "lower",
        "lobe",
        "mild",
        "moderate",
        "severe",
        "pleural",
        "effusion",
        "opacity",
        "pneumothorax",
        "edema",
    ]
    rng = random.Random(0)
    corpus = [" ".join(rng.choices(words, k=8)) + "." for _ in range(300)]
    a = build_tiny_text_model(corpus, tmp_path / "a", vocab_size=60, seed=3)
    b = build_tiny_text_model(corpus, tmp_path / "b", vocab_size=60, seed=3)
    for name in ("tokenizer.json", "model.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    vocab = AutoTokenizer.from_pretrained(a, local_files_only=True).get_vocab()
    assert len(vocab) == 60 and "effusion" in vocab and "##x" in vocab  # frequent words, then characters


def test_vision_weights_from_a_local_file_adapt_rgb_to_grey(tmp_path):
    state = save_timm_vit(tmp_path / "vit.safetensors", img_size=64, **TINY_VIT)
    tower = VisionTower("vit_base_patch16_224", weights=tmp_path / "vit.safetensors", image_size=64, **TINY_VIT)
    loaded = tower.trunk.state_dict()
    torch.testing.assert_close(loaded["blocks.1.attn.qkv.weight"], state["blocks.1.attn.qkv.weight"])
    torch.testing.assert_close(loaded["cls_token"], state["cls_token"])
    # timm's in_chans=1 adaptation: the RGB kernel summed over its channels
    torch.testing.assert_close(loaded["patch_embed.proj.weight"], state["patch_embed.proj.weight"].sum(1, keepdim=True))
    # position embeddings saved at another size are resampled to the tower's grid
    resized = VisionTower("vit_base_patch16_224", weights=tmp_path / "vit.safetensors", image_size=96, **TINY_VIT)
    assert resized.trunk.pos_embed.shape == (1, 1 + 36, 32)


def test_data_config_of_every_tower_tells_the_truth(tmp_path, text_dir):
    """timm's resolve_data_config returns each tower's channels, size, mean and std; the transforms use them."""
    save_timm_vit(tmp_path / "vit.safetensors", img_size=64, **TINY_VIT)
    # vit_base_patch16_224's default weights (augreg2_in21k_ft_in1k) expect mean 0.5, std 0.5
    pretrained = VisionTower("vit_base_patch16_224", weights=tmp_path / "vit.safetensors", image_size=64, **TINY_VIT)
    config = timm.data.resolve_data_config(model=pretrained.trunk)
    assert (config["input_size"], config["mean"], config["std"]) == ((1, 64, 64), (0.5,), (0.5,))
    assert pretrained.normalization == (0.5, 0.5)
    rgb = VisionTower("vit_base_patch16_224", weights=None, image_size=32, in_chans=3, **TINY_VIT)
    config = timm.data.resolve_data_config(model=rgb.trunk)
    assert (config["input_size"], config["mean"], config["std"]) == ((3, 32, 32), (0.5,) * 3, (0.25,) * 3)
    tiny = create_mlip("tiny", text_model=text_dir).vision
    config = timm.data.resolve_data_config(model=tiny.trunk)
    assert (config["input_size"], config["mean"], config["std"]) == ((1, 128, 128), (CXR_MEAN,), (CXR_STD,))


def test_vision_weights_of_another_architecture_are_refused(tmp_path):
    kwargs = {"in_chans": 1, "embed_dim": 32, "depth": 2, "num_heads": 2, "class_token": False, "global_pool": "avg"}
    kwargs["image_size"] = 32
    other = VisionTower("vit_conv_stem_patch16", **kwargs)
    save_file({k: v.contiguous() for k, v in other.trunk.state_dict().items()}, str(tmp_path / "stem.safetensors"))
    # the blocks fit, the stems do not: timm alone would load the blocks and leave the stem random
    with pytest.raises(ValueError, match=r"stem.safetensors does not fit vit_pooled_stem_patch16.*patch_embed"):
        VisionTower("vit_pooled_stem_patch16", weights=tmp_path / "stem.safetensors", **kwargs)
    loaded = VisionTower("vit_conv_stem_patch16", weights=tmp_path / "stem.safetensors", **kwargs)
    torch.testing.assert_close(loaded.trunk.state_dict(), other.trunk.state_dict())


def test_paper_preset_loads_tiny_models_from_the_local_cache(tmp_path, empty_cache, text_dir):
    """The paper preset's code path (hub names resolved in the local cache) with tiny stand-ins."""
    save_timm_vit(tmp_path / "model.safetensors", img_size=64, **TINY_VIT)
    vit_repo = timm.models.get_pretrained_cfg("vit_base_patch16_224").hf_hub_id
    add_to_cache(empty_cache, vit_repo, {"model.safetensors": tmp_path / "model.safetensors"})
    add_to_cache(empty_cache, "emilyalsentzer/Bio_ClinicalBERT", {p.name: p for p in text_dir.iterdir()})
    model = create_mlip("paper", image_size=64, vision_kwargs=TINY_VIT, embed_dim=32, decoder_dim=32, decoder_heads=2)
    assert model.text.source == "emilyalsentzer/Bio_ClinicalBERT"
    assert model.text.hidden_size == 128 and model.vision.embed_dim == 32 and model.vision.trunk.has_class_token
    reference = timm.create_model("vit_base_patch16_224", img_size=64, **TINY_VIT)
    reference.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    torch.testing.assert_close(model.vision.trunk.blocks[0].mlp.fc1.weight, reference.blocks[0].mlp.fc1.weight)
    assert model.tokenizer("Pleural effusion.")["input_ids"][0] == model.tokenizer.cls_token_id
    image = torch.randn(2, 1, 64, 64)
    tokens = [tokenize_sentences(split_sentences(r), model.tokenizer, 32) for r in REPORTS[:2]]
    batch = {k: torch.stack([t[k] for t in tokens]) for k in tokens[0]}
    out = model.eval()(image, **batch)
    assert out.image_embeds.shape == (2, 32) and out.patch_embeds.shape == (2, 16, 32)


def test_missing_vision_weights_name_the_model_and_the_fix(empty_cache):
    with pytest.raises(PretrainedNotFoundError, match="vit_base_patch16_224") as info:
        create_mlip("paper")
    assert "vision_weights" in str(info.value) and "never downloads" in str(info.value)
    with pytest.raises(PretrainedNotFoundError, match="not found"):
        VisionTower("vit_base_patch16_224", weights="/nonexistent/vit.safetensors")


def test_missing_text_model_names_the_model_and_the_fix(empty_cache):
    with pytest.raises(PretrainedNotFoundError, match="Bio_ClinicalBERT") as info:
        create_mlip("paper", vision_weights=None, vision_kwargs=TINY_VIT, image_size=32)
    assert "save_pretrained" in str(info.value) and "HF_HOME" in str(info.value)


def test_tiny_preset_needs_a_text_model():
    with pytest.raises(ValueError, match="build_tiny_text_model"):
        create_mlip("tiny")


def test_factory_overrides(text_dir):
    assert list_presets() == ["paper", "tiny"]
    with pytest.raises(ValueError, match="unknown MLIP preset"):
        create_mlip("huge", text_model=text_dir)
    with pytest.raises(ValueError, match="unknown create_mlip argument"):
        create_mlip("tiny", text_model=text_dir, embed_size=3)
    model = create_mlip(
        "tiny", text_model=text_dir, image_size=64, mask_ratio=0.75, max_sentences=4, vision_kwargs={"depth": 2}
    )
    assert len(model.vision.trunk.blocks) == 2 and model.vision.embed_dim == 128  # merged into the preset's kwargs
    assert model.mask_ratio == 0.75 and model.text.max_sentences == 4 and model.vision.grid_size == (4, 4)
    assert model.config.vision_kwargs["class_token"] is False
    assert PRESETS["tiny"].vision_kwargs["depth"] == 4  # presets are not changed by overrides
    no_vit_kwargs = dict.fromkeys(PRESETS["tiny"].vision_kwargs)
    with pytest.raises(TypeError, match="not a timm VisionTransformer"):
        create_mlip(
            "tiny", text_model=text_dir, vision_model="swin_tiny_patch4_window7_224", vision_kwargs=no_vit_kwargs
        )
