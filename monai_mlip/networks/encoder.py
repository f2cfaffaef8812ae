"""An image-only view of a trained MLIP model, for inference, ``verify_net_in_out`` and TorchScript export."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from monai_mlip.networks.mlip import MLIP
from monai_mlip.networks.vision import VisionTower

__all__ = ["ImageEncoder"]


class ImageEncoder(nn.Module):
    """``[B, C, H, W]`` images -> ``[B, D]`` L2-normalised embeddings in MLIP's shared space.

    The submodules keep MLIP's names (``vision``, ``image_projection``), and :meth:`load_state_dict` takes a
    whole MLIP ``state_dict`` (the pre-training bundle's ``models/model.pt``), so MONAI's ``ckpt_export`` and
    ``CheckpointLoader`` load that file into this module directly.

    Args:
        vision: the vision tower.
        image_projection: the linear map into the shared space.
    """

    def __init__(self, vision: VisionTower, image_projection: nn.Linear) -> None:
        super().__init__()
        self.vision = vision
        self.image_projection = image_projection

    @classmethod
    def from_mlip(cls, model: MLIP) -> ImageEncoder:
        """Share the vision tower and projection of ``model`` (no copy)."""
        return cls(model.vision, model.image_projection)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load this module's entries of ``state_dict``, ignoring the rest of MLIP (text tower, decoder, SIE,
        logit scales); with ``strict``, a missing vision or projection entry is still an error."""
        own = {key: value for key, value in state_dict.items() if key.split(".", 1)[0] in self._modules}
        return super().load_state_dict(own, strict=strict, assign=assign)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, D]`` L2-normalised global embeddings."""
        return F.normalize(self.image_projection(self.vision(image).global_features), dim=-1)

    def patches(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, P, D]`` L2-normalised embeddings of every patch, in row-major grid order."""
        return F.normalize(self.image_projection(self.vision(image).patch_features), dim=-1)
