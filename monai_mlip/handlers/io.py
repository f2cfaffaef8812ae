"""Handlers that write run outputs: metrics JSON and atomic checkpoints, plus per-epoch reseeding.

MONAI's ``CheckpointSaver`` writes with ``atomic=False`` (a crash mid-write leaves a truncated file that a
resume would then load), so :class:`AtomicCheckpointSaver` uses ignite's ``Checkpoint`` with
:func:`~monai_mlip.atomic_io.save_atomic` (a temporary file, flushed to disk, then renamed; removed if the
write fails).
:func:`latest_checkpoint` resumes from the newest checkpoint that loads, naming any it skips. Neither
the checkpoint saver nor :class:`FinalModelSaver` writes a model holding a NaN or infinite value
(:class:`~monai_mlip.errors.NonFiniteWeightsError`): the last good file stays the one a resume or a
downstream bundle finds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from ignite.handlers.checkpoint import BaseSaveHandler
from monai.transforms import Randomizable
from monai.utils import is_scalar, set_determinism

from monai_mlip.atomic_io import read_checkpoint, save_atomic, write_json_atomic
from monai_mlip.errors import CheckpointError, NonFiniteWeightsError

__all__ = [
    "AtomicCheckpointSaver",
    "EpochReseed",
    "FinalModelSaver",
    "MetricsWriter",
    "check_finite_weights",
    "latest_checkpoint",
]

logger = logging.getLogger("monai_mlip.handlers")

_CHECKPOINT = re.compile(r"checkpoint_epoch=(\d+)\.pt$")


def latest_checkpoint(directory: str | os.PathLike) -> str | None:
    """The ``checkpoint_epoch=N.pt`` with the largest ``N`` in ``directory`` that loads, or ``None``.

    Newer files that do not load (truncated, empty) are skipped with a warning naming each.
    """
    found = [
        (int(m.group(1)), p) for p in Path(directory).glob("checkpoint_epoch=*.pt") if (m := _CHECKPOINT.search(p.name))
    ]
    for _, path in sorted(found, reverse=True):
        try:
            read_checkpoint(path)
        except CheckpointError as error:
            logger.warning("skipping an unreadable checkpoint: %s", error)
            continue
        return str(path)
    return None


class _AtomicSaveHandler(BaseSaveHandler):
    """ignite save handler writing each checkpoint with :func:`save_atomic` into ``directory``."""

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)

    def __call__(self, checkpoint: Mapping, filename: str, metadata: Mapping | None = None) -> None:
        save_atomic(checkpoint, self.directory / filename)

    def remove(self, filename: str) -> None:
        (self.directory / filename).unlink(missing_ok=True)


def check_finite_weights(network: torch.nn.Module, what: str) -> None:
    """Raise :class:`~monai_mlip.errors.NonFiniteWeightsError` naming the parameters and buffers of
    ``network`` that hold a NaN or infinite value (``what`` names the file that will not be written)."""
    bad = [
        name
        for name, tensor in network.state_dict().items()
        if tensor.is_floating_point() and not torch.isfinite(tensor).all()
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteWeightsError(
            f"{what} not written: non-finite values in {shown}. Resume from the last checkpoint with a lower "
            "learning rate, and check the inputs named in the non-finite warnings."
        )


class AtomicCheckpointSaver:
    """Save named objects (model, optimiser, scheduler, trainer) every ``save_interval`` epochs, atomically.

    Files are ``{save_dir}/checkpoint_epoch={N}.pt`` holding ``{name: state_dict}``; the ``n_saved`` most recent
    are kept. They load with ``torch.load(..., weights_only=True)`` and MONAI's ``CheckpointLoader``.

    Args:
        save_dir: the directory (created).
        save_dict: ``{name: object with state_dict()}``.
        save_interval: epochs between saves.
        n_saved: files kept.
    """

    def __init__(
        self, save_dir: str | os.PathLike, save_dict: Mapping[str, Any], save_interval: int = 1, n_saved: int = 1
    ) -> None:
        self.save_interval = save_interval
        self.models = {name: obj for name, obj in save_dict.items() if isinstance(obj, torch.nn.Module)}
        self.checkpoint = Checkpoint(
            dict(save_dict),
            _AtomicSaveHandler(save_dir),
            filename_prefix="checkpoint",
            n_saved=n_saved,
            global_step_transform=lambda engine, _: engine.state.epoch,
            filename_pattern="{filename_prefix}_epoch={global_step}.{ext}",
        )

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self)

    def __call__(self, engine: Engine) -> None:
        for name, model in self.models.items():
            check_finite_weights(model, f"checkpoint of epoch {engine.state.epoch} ({name})")
        self.checkpoint(engine)


class FinalModelSaver:
    """When training completes, write the finished model's files, the config that rebuilds it last.

    1. ``path``: the network's ``state_dict`` (unwrapped from DDP; refused when non-finite), the bundle's
       ``models/model.pt``, loadable with ``torch.load(weights_only=True)`` and by MONAI's
       ``CheckpointLoader`` with ``load_dict={"model": network}``;
    2. ``encoder_dir``: the network's vision tower (``network.vision``) for sharing
       (:func:`~monai_mlip.networks.save_encoder`), with the model card ``card()`` returns;
    3. ``config_path``: ``config`` as JSON (the record :func:`~monai_mlip.networks.load_pretrained` rebuilds
       the network from).

    Each file is written atomically, and a run that stops before completing writes none of them, so a
    failed run never leaves new weights beside an old config (or the reverse): the previous run's set
    stays whole and loadable.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        path: str | os.PathLike,
        config: Mapping[str, Any] | None = None,
        config_path: str | os.PathLike | None = None,
        encoder_dir: str | os.PathLike | None = None,
        card: Callable[[], str] | None = None,
    ) -> None:
        if (config is None) != (config_path is None):
            raise ValueError("config and config_path go together")
        self.network = network
        self.path = path
        self.config, self.config_path = config, config_path
        self.encoder_dir, self.card = encoder_dir, card

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        from monai_mlip.networks.export import save_encoder

        network = self.network.module if hasattr(self.network, "module") else self.network
        check_finite_weights(network, str(self.path))
        save_atomic(network.state_dict(), self.path)
        logger.info("model weights written to %s", self.path)
        if self.encoder_dir is not None:
            save_encoder(network.vision, self.encoder_dir, self.card() if self.card is not None else None)
            logger.info("image encoder written to %s", self.encoder_dir)
        if self.config_path is not None:
            write_json_atomic(self.config_path, self.config)


class MetricsWriter:
    """Write the engine's scalar metrics to a JSON file (atomically) when a run completes.

    The file is rewritten after every evaluation, merging with what is there (several evaluators can share
    it), so after training it holds the final validation's figures.

    The entry ``epoch`` is the engine's epoch: for an evaluator run by MONAI's ``ValidationHandler``, the
    trainer's epoch.

    Args:
        path: the JSON file.
        extra: constant entries added to the file (the checkpoint evaluated, the dataset...).
    """

    def __init__(self, path: str | os.PathLike, extra: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.extra = dict(extra or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        current = json.loads(self.path.read_text()) if self.path.is_file() else {}
        # an undefined figure (say, an AUC over one class) is written as null: JSON has no NaN
        scalars = {name: float(v) for name, v in engine.state.metrics.items() if is_scalar(v)}
        current.update({name: v if math.isfinite(v) else None for name, v in scalars.items()})
        current.update(self.extra)
        current["epoch"] = engine.state.epoch
        write_json_atomic(self.path, current)
        logger.info("metrics written to %s", self.path)


class EpochReseed:
    """At the start of every epoch, seed every random source from ``(seed, epoch)``.

    This makes an epoch's data order, augmentations, masks and dropout depend only on the seed, the epoch
    number and the process rank, so a run resumed from an epoch checkpoint continues exactly like the
    uninterrupted run.

    Args:
        seed: the run's seed.
        transforms: random transforms (a MONAI ``Compose``) whose own random states are reset as well
            (they live in the main process when the loader has no workers).
    """

    def __init__(self, seed: int, transforms: Sequence[Randomizable] | Randomizable | None = None) -> None:
        self.seed = seed
        self.transforms = [transforms] if isinstance(transforms, Randomizable) else list(transforms or [])

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        epoch_seed = (self.seed * 100_003 + engine.state.epoch * 1_009 + rank) % (2**31)
        set_determinism(seed=epoch_seed, use_deterministic_algorithms=None)
        for transform in self.transforms:
            transform.set_random_state(seed=epoch_seed)
