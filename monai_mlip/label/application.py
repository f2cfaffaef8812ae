"""The MONAI Label app: the downstream classification and segmentation bundles, served and fine-tuned offline.

Options (``--conf KEY VALUE`` of ``python -m monailabel.main start_server``):

- ``models``: comma-separated bundle names, or ``all`` (default): every ``*classification*`` and
  ``*segmentation*`` bundle in ``bundles``;
- ``bundles``: the bundles folder (default: ``bundles/`` of the repository this package runs from);
- ``pretrained_dir``: the pre-training bundle's ``models`` folder the downstream networks are built on
  (default: ``<bundles>/mlip_pretrain/models``);
- ``skip_trainers``: ``true`` serves inference only.

Create the app's folder first (``python -m monai_mlip.label init DIR``) and pass it as ``--app``: the installed
bundles, fine-tuned weights and logs go there, never into the installed package.

Nothing is downloaded: no model zoo, no SAM. A local studies folder also lists DICOM (``.dcm``) and
``.jpeg`` images beside MONAI Label's defaults (``.png``, ``.jpg``, ``.nii.gz``...).
"""

from __future__ import annotations

import logging
from pathlib import Path

from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.utils.others.generic import strtobool

import monai_mlip
from monai_mlip.label.app_folder import check_app_folder
from monai_mlip.label.bundles import bundle_kind, check_pretrained_dir, install_bundle, select_bundles
from monai_mlip.label.infer_tasks import ClassificationInferTask, SegmentationInferTask
from monai_mlip.label.train_tasks import ClassificationTrainTask, SegmentationTrainTask

__all__ = ["RADIOGRAPH_EXTENSIONS", "MLIPLabelApp", "default_bundles_dir"]

logger = logging.getLogger(__name__)

RADIOGRAPH_EXTENSIONS = ("*.dcm", "*.dicom", "*.jpeg")
INFER_TASKS = {"classification": ClassificationInferTask, "segmentation": SegmentationInferTask}
TRAIN_TASKS = {"classification": ClassificationTrainTask, "segmentation": SegmentationTrainTask}


def default_bundles_dir() -> Path:
    """``bundles/`` of the repository checkout this package is installed from (``pip install -e .``)."""
    return Path(monai_mlip.__file__).resolve().parents[1] / "bundles"


class MLIPLabelApp(MONAILabelApp):
    """Serves the selected downstream bundles, installed into ``APP_DIR/model/`` at start (see
    :func:`~monai_mlip.label.install_bundle`)."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        app_dir = str(check_app_folder(app_dir))  # run-time files go to the user's folder, not the package
        bundles_dir = Path(conf.get("bundles") or default_bundles_dir()).resolve()
        pretrained_dir = conf.get("pretrained_dir") or bundles_dir / "mlip_pretrain" / "models"
        self.pretrained_dir = check_pretrained_dir(pretrained_dir)
        selected = select_bundles(bundles_dir, conf.get("models", "all"))
        model_dir = Path(app_dir) / "model"
        self.bundles = {name: install_bundle(path, model_dir, self.pretrained_dir) for name, path in selected.items()}
        logger.info("serving %s on %s", sorted(self.bundles), self.pretrained_dir)
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="MLIP chest X-ray (monai_mlip)",
            description="Classification and segmentation bundles on the MLIP pre-trained chest X-ray encoder",
            version=monai_mlip.__version__,
        )

    def init_datastore(self) -> Datastore:
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        extensions = list(dict.fromkeys([*settings.MONAI_LABEL_DATASTORE_FILE_EXT, *RADIOGRAPH_EXTENSIONS]))
        return LocalDatastore(
            self.studies,
            extensions=extensions,
            auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
            read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY,
        )

    def init_infers(self) -> dict[str, InferTask]:
        return {
            name: INFER_TASKS[bundle_kind(name)](str(path), self.conf, self.pretrained_dir)
            for name, path in self.bundles.items()
        }

    def init_trainers(self) -> dict[str, TrainTask]:
        if strtobool(self.conf.get("skip_trainers", "false")):
            return {}
        return {
            name: TRAIN_TASKS[bundle_kind(name)](str(path), self.conf, self.pretrained_dir)
            for name, path in self.bundles.items()
        }
