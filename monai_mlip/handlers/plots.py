"""Handlers that draw figures: phrase-to-region heatmaps over validation images, segmentation overlays, the SIE
phi map and ROC curves, each as a PNG file and, given a ``log_dir``, as a TensorBoard image beside the run's
scalars (``SummaryWriter.add_figure``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from torch import nn
from torch.nn import functional as F

from monai_mlip.networks.mlip import unwrap

__all__ = [
    "FigureLogger",
    "GroundingHeatmapSaver",
    "PhiMapSaver",
    "SegmentationOverlaySaver",
    "pyplot",
    "save_roc_curve",
]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (runs write files; there may be no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class FigureLogger:
    """Send matplotlib figures to TensorBoard in ``log_dir`` (``None``: nowhere); the writer opens on first use."""

    def __init__(self, log_dir: str | os.PathLike | None = None) -> None:
        self.log_dir = log_dir
        self._writer: Any = None

    def log(self, tag: str, figure: Any, step: int) -> None:
        """Add ``figure`` as image ``tag`` at ``step`` (the figure stays open: the caller saves and closes it)."""
        if self.log_dir is None:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.log_dir))
        self._writer.add_figure(tag, figure, global_step=step, close=False)
        self._writer.flush()


def save_roc_curve(
    scores: torch.Tensor,
    labels: torch.Tensor,
    path: str | os.PathLike,
    title: str = "",
    figures: FigureLogger | None = None,
    step: int = 0,
) -> None:
    """Draw the ROC curve of ``[N]`` scores against ``[N]`` 0/1 labels to a PNG (written atomically) and, with
    ``figures``, to TensorBoard as ``roc/<file name>`` at ``step``."""
    from monai_mlip.atomic_io import write_atomic

    order = torch.argsort(scores, descending=True, stable=True)
    truth = labels[order].double()
    true_positive_rate = torch.cat([torch.zeros(1), truth.cumsum(0) / truth.sum()])
    false_positive_rate = torch.cat([torch.zeros(1), (1 - truth).cumsum(0) / (1 - truth).sum()])
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(4, 4))
    axis.plot(false_positive_rate.numpy(), true_positive_rate.numpy(), lw=1.5)
    axis.plot([0, 1], [0, 1], ls="--", lw=0.8, color="grey")
    axis.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    figure.tight_layout()
    if figures is not None:
        figures.log(f"roc/{Path(path).stem}", figure, step)
    write_atomic(path, lambda handle: figure.savefig(handle, format="png", dpi=100), "wb")
    plt.close(figure)


class _FirstItemsSaver:
    """Base of the handlers that draw the first ``max_items`` items of each evaluation as ``{prefix}_{n}.png``
    (and, given ``log_dir``, as TensorBoard images ``{prefix}/{n}`` at the evaluation's epoch)."""

    prefix = "item"

    def __init__(
        self, output_dir: str | os.PathLike, max_items: int = 8, log_dir: str | os.PathLike | None = None
    ) -> None:
        self.output_dir = Path(output_dir)
        self.max_items = max_items
        self.figures = FigureLogger(log_dir)
        self._saved = 0
        self._epoch = 0

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._saved = 0
        self._epoch = engine.state.epoch

    def _room(self) -> int:
        """How many more items this evaluation draws."""
        return self.max_items - self._saved

    def _write(self, figure: Any) -> None:
        """Save ``figure`` as the next ``{prefix}_{n}.png`` and close it."""
        figure.tight_layout()
        self.figures.log(f"{self.prefix}/{self._saved}", figure, self._epoch)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        figure.savefig(self.output_dir / f"{self.prefix}_{self._saved}.png", dpi=100)
        pyplot().close(figure)
        self._saved += 1


class GroundingHeatmapSaver(_FirstItemsSaver):
    """Save the first ``max_items`` phrase heatmaps of an evaluation as PNGs (image, heatmap, truth outline).

    Reads the evaluator output of a :class:`~monai_mlip.inferers.GroundingInferer` run: ``image``
    ``[B, C, H, W]``, ``label`` (the ground-truth mask ``[B, 1, H, W]``) and ``pred["heatmap"]``, and the
    batch's ``phrase`` strings.

    Args:
        output_dir: where ``grounding_{n}.png`` files go.
        max_items: how many items to draw (from the first batches).
        log_dir: TensorBoard folder for the same figures, or ``None``.
    """

    prefix = "grounding"

    def __call__(self, engine: Engine) -> None:
        if self._room() <= 0:
            return
        output, phrases = engine.state.output, engine.state.batch.get("phrase", [])
        images, masks, maps = output["image"], output["label"], output["pred"]["heatmap"]
        plt = pyplot()
        for index in range(min(len(images), self._room())):
            image = images[index, 0].float().cpu()
            heat = F.interpolate(maps[index][None, None].float(), size=image.shape, mode="bilinear")[0, 0].cpu()
            figure, axis = plt.subplots(figsize=(4, 4.4))
            axis.imshow(image, cmap="gray")
            axis.imshow(heat, cmap="jet", alpha=0.4)
            axis.contour(masks[index, 0].float().cpu(), levels=[0.5], colors="white", linewidths=1.5)
            phrase = phrases[index] if index < len(phrases) else ""
            axis.set_title(phrase if len(phrase) < 60 else phrase[:57] + "...", fontsize=8)
            axis.axis("off")
            self._write(figure)


class PhiMapSaver:
    """Save the SIE phi map (per-patch contribution to the integrity weight) as ``phi_map.png`` after each epoch.

    A model trained without SIE has no map: nothing is written.

    Args:
        network: the :class:`~monai_mlip.networks.MLIP` being trained (or its DDP wrapper).
        output_dir: where ``phi_map.png`` goes.
        log_dir: TensorBoard folder for the map (``sie/phi_map`` at each epoch), or ``None``.
    """

    def __init__(
        self, network: nn.Module, output_dir: str | os.PathLike, log_dir: str | os.PathLike | None = None
    ) -> None:
        self.network = network
        self.output_dir = Path(output_dir)
        self.figures = FigureLogger(log_dir)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        phi = unwrap(self.network).phi_map()
        if phi is None:
            return
        phi = phi.float().cpu()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        plt = pyplot()
        figure, axis = plt.subplots(figsize=(4, 3.6))
        limit = float(phi.abs().max()) or 1.0
        shown = axis.imshow(phi, cmap="coolwarm", vmin=-limit, vmax=limit)
        figure.colorbar(shown, ax=axis, fraction=0.046)
        axis.set_title(f"SIE phi, epoch {engine.state.epoch}", fontsize=9)
        axis.axis("off")
        figure.tight_layout()
        self.figures.log("sie/phi_map", figure, engine.state.epoch)
        figure.savefig(self.output_dir / "phi_map.png", dpi=100)
        plt.close(figure)


class SegmentationOverlaySaver(_FirstItemsSaver):
    """Save the first ``max_items`` items of an evaluation as PNGs: the image, then the ground truth (green)
    and the thresholded prediction (red) outlined over it.

    Reads the evaluator's decollated output: a list of dicts with ``image`` ``[1, H, W]``, ``label`` and
    ``pred`` ``[1, H, W]`` (the prediction already thresholded by the post-processing).

    Args:
        output_dir: where ``overlay_<n>.png`` go.
        max_items: how many items to draw per evaluation.
        log_dir: TensorBoard folder for the same figures, or ``None``.
    """

    prefix = "overlay"

    def __call__(self, engine: Engine) -> None:
        plt = pyplot()
        for item in engine.state.output[: max(self._room(), 0)]:
            image, label, pred = (item[key].detach().float().cpu()[0] for key in ("image", "label", "pred"))
            figure, axes = plt.subplots(1, 2, figsize=(6, 3.2))
            for axis in axes:
                axis.imshow(image, cmap="gray")
                axis.axis("off")
            for mask, colour in ((label, "lime"), (pred, "red")):
                if mask.max() > 0.5:  # an empty mask has no outline
                    axes[1].contour(mask, levels=[0.5], colors=colour, linewidths=1)
            axes[1].set_title("truth (green), prediction (red)", fontsize=8)
            self._write(figure)
