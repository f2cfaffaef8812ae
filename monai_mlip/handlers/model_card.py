"""The Hugging Face model card of an exported image encoder, written from the run that trained it."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["encoder_card"]

_LOADING = """```python
from monai_mlip.networks import load_encoder

encoder = load_encoder("path/to/this/folder").eval()
features = encoder(images).global_features  # images: [B, 1, H, W] in [0, 1], normalised with the mean/std below
```

With timm alone (after `import monai_mlip.networks`, which registers the project's stem architectures):
`timm.create_model("local-dir:path/to/this/folder", pretrained=True)`."""


def encoder_card(
    title: str,
    metrics_path: str | os.PathLike | None,
    preset: str,
    settings: Mapping[str, Any] | None = None,
    data: str = "",
    normalization: tuple[float, float] | None = None,
) -> str:
    """A ``README.md`` in the Hugging Face model-card format (YAML metadata, then Markdown).

    Args:
        title: the card's heading.
        metrics_path: the run's ``metrics.json`` (its final validation); ``None`` or absent: no table.
        preset: the model preset the run used.
        settings: the preset's overrides for the run.
        data: what the encoder was trained on.
        normalization: ``(mean, std)`` of the grey input.
    """
    metrics: dict[str, Any] = {}
    if metrics_path is not None and Path(metrics_path).is_file():
        metrics = json.loads(Path(metrics_path).read_text())
    rows = [f"| {name} | {value:.3f} |" for name, value in sorted(metrics.items()) if isinstance(value, float)]
    table = "\n".join(["| metric | value |", "| --- | --- |", *rows]) if rows else "No validation metrics recorded."
    lines = [
        "---",
        "library_name: timm",
        "license: apache-2.0",
        "pipeline_tag: image-feature-extraction",
        "tags: [monai, monai_mlip, chest-x-ray, vision-language-pretraining, mlip]",
        "---",
        "",
        f"# {title}",
        "",
        "The image encoder of an MLIP pre-training run (Liu et al., ISBI 2024: global image-report contrastive",
        "learning, patch-sentence optimal transport, masked contrastive learning with semantic integrity",
        "estimation, masked image prediction), exported from the `monai_mlip` pre-training bundle.",
        "",
        "## Training",
        "",
        f"- preset: `{preset}`, overrides: `{json.dumps(dict(settings or {}), sort_keys=True)}`",
        f"- data: {data or 'not recorded'}",
        f"- input: one grey channel in [0, 1], normalised with mean {normalization[0]}, std {normalization[1]}"
        if normalization is not None
        else "- input: see `pretrained_cfg` in `config.json`",
        "",
        "## Validation at the end of training",
        "",
        table,
        "",
        "## Loading",
        "",
        _LOADING,
        "",
        "## Intended use and license",
        "",
        "Research on chest X-ray representation learning; not for clinical use. The weights are under",
        "Apache-2.0; the data they were trained on has its own terms (the bundle's `docs/data_license.txt`).",
        "",
    ]
    return "\n".join(lines)
