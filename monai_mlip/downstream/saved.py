"""A trained downstream network and the config that rebuilds it, so that inference needs only the bundle.

A downstream training run keeps its best weights in a staging folder while it runs; when it completes,
:class:`PublishBestModel` moves them to ``models/model.pt`` and writes ``models/network_config.json`` beside
them (the network's ``rebuild_config``: the encoder's timm config and the head's or decoder's arguments).
:func:`load_trained_network` rebuilds the architecture from that file alone (no pre-training run, no text
tower, no tokenizer) for MONAI's ``CheckpointLoader`` to load the weights into. A run that fails before
completing leaves the previous pair as it was.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from ignite.engine import Engine, Events
from torch import nn

from monai_mlip.atomic_io import write_json_atomic
from monai_mlip.downstream.classification import CXRClassifier
from monai_mlip.downstream.segmentation import unetr_from_tower
from monai_mlip.networks.export import tower_from_config

__all__ = ["NETWORK_CONFIG", "PublishBestModel", "load_trained_network", "network_config"]

NETWORK_CONFIG = "network_config.json"
logger = logging.getLogger("monai_mlip.downstream")


def network_config(network: nn.Module) -> dict[str, Any]:
    """The ``rebuild_config`` of a downstream network (unwrapped from DDP)."""
    network = network.module if hasattr(network, "module") else network
    if not hasattr(network, "rebuild_config"):
        raise TypeError(f"{type(network).__name__} has no rebuild_config: not a downstream bundle's network")
    return network.rebuild_config


def load_trained_network(models_dir: str | os.PathLike) -> nn.Module:
    """The architecture ``models_dir/network_config.json`` describes, randomly initialised (load the
    trained ``model.pt`` into it).

    Raises:
        FileNotFoundError: no config there; the message says what writes it.
    """
    path = Path(models_dir) / NETWORK_CONFIG
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: a downstream training run (train.json) writes it with model.pt when it completes"
        )
    config = json.loads(path.read_text())
    tower = tower_from_config(config["encoder"])
    if config["network"] == "classifier":
        return CXRClassifier(tower, num_classes=config["num_classes"], freeze_encoder=config["freeze_encoder"])
    if config["network"] == "unetr":
        return unetr_from_tower(
            tower,
            copy_weights=False,
            out_channels=config["out_channels"],
            feature_size=config["feature_size"],
            freeze_encoder=config["freeze_encoder"],
            foreground_prior=None,
        )
    raise ValueError(f"{path}: unknown network {config['network']!r}")


class PublishBestModel:
    """When training completes, move the run's best weights (``staged``, which MONAI's ``CheckpointSaver``
    keeps up to date) to ``path`` and write the network's config to ``config_path``, config last.

    Without a staged file (no validation ran) nothing is written and a warning says so.
    """

    def __init__(
        self, staged: str | os.PathLike, path: str | os.PathLike, network: nn.Module, config_path: str | os.PathLike
    ) -> None:
        self.staged, self.path, self.config_path = Path(staged), Path(path), Path(config_path)
        self.network = network

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        if not self.staged.is_file():
            logger.warning("no validation saved weights to %s: %s is left as it was", self.staged, self.path)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.staged, self.path)
        write_json_atomic(self.config_path, network_config(self.network))
        logger.info("model weights and %s written to %s", NETWORK_CONFIG, self.path.parent)
