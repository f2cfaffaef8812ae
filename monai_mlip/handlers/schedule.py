"""Unmasked tuning: the last epochs of a masked pre-training run on whole images (FLIP's remedy).

A model trained on masked views is evaluated and used downstream on whole images; FLIP (Li et al., CVPR
2023) closes that gap with a short final phase without masking. :class:`UnmaskedTuning` sets the model's
training mask ratio to 0 for the last ``epochs`` epochs (from the epoch number, so a resumed run does the
same). The terms that need hidden patches keep their parameters in the graph with zero gradients (the MIP
decoder runs on no hidden patch, the SIE weights become equal), which DDP needs.
"""

from __future__ import annotations

from ignite.engine import Engine, Events
from torch import nn

from monai_mlip.networks.mlip import unwrap

__all__ = ["UnmaskedTuning"]


class UnmaskedTuning:
    """Train the last ``epochs`` epochs without masking.

    Args:
        network: the MLIP model (or its DDP wrapper).
        epochs: how many final epochs run unmasked (0: none).
    """

    def __init__(self, network: nn.Module, epochs: int = 0) -> None:
        if int(epochs) < 0:
            raise ValueError(f"epochs must be >= 0, got {epochs}")
        self.model = unwrap(network)
        self.epochs = int(epochs)
        self.mask_ratio = self.model.mask_ratio

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        unmasked = engine.state.epoch > engine.state.max_epochs - self.epochs
        self.model.mask_ratio = 0.0 if unmasked else self.mask_ratio
