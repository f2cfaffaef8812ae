"""A PNG contact sheet of rendered studies: each image with its finding masks outlined and report excerpts."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from monai_mlip.synthetic.findings import PREVALENCE
from monai_mlip.synthetic.identifiers import item_rng
from monai_mlip.synthetic.study import SyntheticStudy, render_study

__all__ = ["preview_layout", "write_preview"]

_COLOURS = {
    "pneumonia": "#ff4d4d",
    "pneumothorax": "#4da6ff",
    "pleural_effusion": "#ffd24d",
    "cardiomegaly": "#ff66ff",
    "atelectasis": "#ff9933",
    "edema": "#66ff66",
    "nodule": "#00e6e6",
    "support_device": "#bbbbbb",
}


def write_preview(studies: Sequence[SyntheticStudy], path: str | os.PathLike, columns: int = 4) -> Path:
    """Draw studies in a grid and save it as a PNG.

    Each tile shows the image with every finding's mask outlined in its colour, the view and findings
    as a title, and below it the finding sentences (the impression when the study is normal).

    Args:
        studies: the studies to show.
        path: the PNG to write.
        columns: tiles per row.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(studies) // columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 5.0 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, study in zip(axes.ravel(), studies, strict=False):
        ax.imshow(study.image, cmap="gray", vmin=0, vmax=1)
        for finding in study.findings:
            if finding.mask.any():
                ax.contour(finding.mask, levels=[0.5], colors=[_COLOURS[finding.name]], linewidths=0.8)
        names = ", ".join(sorted({f.name + ("?" if f.uncertain else "") for f in study.findings})) or "no finding"
        ax.set_title(f"{study.view}: {names}", fontsize=7)
        lines = [f.sentence for f in study.findings] or [s.text for s in study.report.impression]
        excerpt = "\n".join(textwrap.fill(line, 52) for line in lines[:5])
        ax.text(0.0, -0.02, excerpt, transform=ax.transAxes, fontsize=5.5, va="top", ha="left", family="monospace")
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def preview_layout(
    layout: str, path: str | os.PathLike, n: int = 12, seed: int = 0, image_size: int = 512, real_shapes: bool = False
) -> Path:
    """Preview the first ``n`` items a layout writer makes with ``seed`` (re-rendered from their seeds).

    The images, masks and finding sentences are those of the written files; a MIMIC study that also has a
    lateral view shows its frontal image only.
    """
    if layout not in PREVALENCE:
        raise ValueError(f"layout must be one of {tuple(PREVALENCE)}, got {layout!r}")
    studies = [
        render_study(item_rng(seed, layout, i), image_size, prevalence=layout, use_real_shapes=real_shapes)
        for i in range(n)
    ]
    return write_preview(studies, path)
