"""Write inference outputs: the pre-training bundle's image embeddings and zero-shot scores, and the
classification bundles' scores with a header."""

from __future__ import annotations

import csv
import io
import logging
import os
from pathlib import Path

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import CSVSaver

from monai_mlip.atomic_io import write_atomic
from monai_mlip.zero_shot.classifier import ZeroShotClassifier

__all__ = ["EmbeddingWriter", "ScoresCSVSaver"]

logger = logging.getLogger("monai_mlip.handlers")


class ScoresCSVSaver(CSVSaver):
    """MONAI's ``CSVSaver`` (for ``ClassificationSaver(saver=...)``) whose file starts with a header row, so
    a spreadsheet or ``pandas.read_csv`` names the columns (``image`` and one per output channel).

    Args:
        header: the column names.
        kwargs: ``CSVSaver``'s (``output_dir``, ``filename``, ``overwrite``, ...).
    """

    def __init__(self, header: list[str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.header = list(header)

    def finalize(self) -> None:
        if not self._filepath.is_file() or self._filepath.stat().st_size == 0:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            self._filepath.write_text(self.delimiter.join(self.header) + "\n")
        super().finalize()


class EmbeddingWriter:
    """Collect ``[B, D]`` image embeddings (the evaluator's ``pred``) and write them when the run completes.

    Files in ``output_dir``:

    - ``embeddings.npz``: ``paths`` (``[N]`` source files) and ``embeddings`` (``[N, D]`` float32, L2-normalised);
    - ``zero_shot_scores.csv`` (with a ``classifier``): one row per image, the source path and, per finding,
      the probability that it is present.

    Args:
        output_dir: the output folder.
        classifier: the prompt-ensemble classifier, or ``None`` for embeddings only.
        image_key: the batch key of the loaded images (their metadata names the source files).
    """

    def __init__(
        self, output_dir: str | os.PathLike, classifier: ZeroShotClassifier | None = None, image_key: str = "image"
    ) -> None:
        self.output_dir = Path(output_dir)
        self.classifier = classifier
        self.image_key = image_key

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.COMPLETED, self._write)

    def _reset(self, _: Engine) -> None:
        self._paths: list[str] = []
        self._embeddings: list[torch.Tensor] = []

    def _collect(self, engine: Engine) -> None:
        self._embeddings.append(engine.state.output["pred"].detach().float().cpu())
        self._paths.extend(engine.state.batch[self.image_key].meta["filename_or_obj"])

    def _write(self, _: Engine) -> None:
        embeddings = torch.cat(self._embeddings)
        buffer = io.BytesIO()
        np.savez(buffer, paths=np.asarray(self._paths), embeddings=embeddings.numpy())
        write_atomic(self.output_dir / "embeddings.npz", lambda handle: handle.write(buffer.getvalue()), "wb")
        if self.classifier is not None:
            scores = self.classifier.scores(embeddings).numpy()
            text = io.StringIO()
            writer = csv.writer(text)
            writer.writerow(["image", *self.classifier.findings])
            for path, row in zip(self._paths, scores, strict=True):
                writer.writerow([path, *(f"{value:.6f}" for value in row)])
            write_atomic(self.output_dir / "zero_shot_scores.csv", lambda handle: handle.write(text.getvalue()), "w")
        logger.info("wrote embeddings of %d images to %s", len(self._paths), self.output_dir)
