"""How long a downstream run trains when its label set is small."""

from __future__ import annotations

import math

__all__ = ["epochs_for_steps"]


def epochs_for_steps(epochs: int, min_steps: int, steps_per_epoch: int) -> int:
    """``epochs``, or more where that gives fewer than ``min_steps`` optimiser steps.

    A few-shot fraction of a small training split is a few batches an epoch: 10 % of 840 synthetic RSNA
    images at batch 32 is 3 steps, so 10 epochs would leave a linear head or a decoder close to its
    random start. Counting steps gives every fraction the same minimum training; full data, with many
    steps an epoch, keeps ``epochs``.

    Args:
        epochs: the fewest epochs.
        min_steps: the fewest optimiser steps.
        steps_per_epoch: batches an epoch (``len(dataloader)``).

    Raises:
        ValueError: the data loader is empty (no training items).
    """
    if steps_per_epoch < 1:
        raise ValueError("the training data loader is empty: the manifest or the data fraction selected no items")
    return max(epochs, math.ceil(min_steps / steps_per_epoch))
