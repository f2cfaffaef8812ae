"""Optimiser parameter groups for MLIP: no weight decay where it does harm, a learning rate per tower.

timm's convention (``param_groups_weight_decay``) keeps biases and 1-D parameters (norms) out of weight
decay; MLIP also keeps out the parameters its model lists in ``no_weight_decay()``: position embeddings,
class / register / mask tokens, the logit scales and the SIE's ``phi``, whose decay would pull them to
meaningless values. A pretrained text tower (the ``paper`` preset's Bio_ClinicalBERT) is fine-tuned at a
fraction of the learning rate, the usual practice for BERT encoders (MGCA freezes part of it instead).
"""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["mlip_param_groups"]


def mlip_param_groups(
    model: nn.Module, learning_rate: float, weight_decay: float, text_lr_scale: float = 1.0
) -> list[dict[str, Any]]:
    """AdamW parameter groups of an :class:`~monai_mlip.networks.MLIP` (or its DDP wrapper).

    Args:
        model: the model; its ``no_weight_decay()`` names the parameters kept out of decay besides biases
            and 1-D parameters.
        learning_rate: the base learning rate.
        weight_decay: decay of the decayed groups.
        text_lr_scale: the text tower's learning rate over ``learning_rate``.

    Returns:
        Up to four groups (decayed or not x text tower or not), each with its ``lr`` and ``weight_decay``,
        parameters that do not require gradients left out.
    """
    model = model.module if hasattr(model, "module") else model
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        decay = parameter.ndim > 1 and not name.endswith(".bias") and name not in skip
        groups.setdefault((decay, name.startswith("text.")), []).append(parameter)
    return [
        {
            "params": parameters,
            "lr": learning_rate * (text_lr_scale if text else 1.0),
            "weight_decay": weight_decay if decay else 0.0,
        }
        for (decay, text), parameters in sorted(groups.items())
    ]
