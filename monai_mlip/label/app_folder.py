"""The folder a MONAI Label app runs in, which its user names: never inside the installed package.

MONAI Label keeps an app's run-time files in the app's folder (the ``--app`` of ``start_server``): the
installed bundles and their fine-tuned weights (``model/``) and its logs (``logs/``). The package ships
only the app's entry file (``monai_mlip/label/app/main.py``); :func:`create_app_folder` copies it into a
folder of the user's (``python -m monai_mlip.label init DIR``), and :func:`check_app_folder` refuses to run
an app from inside the package, where an upgrade or a read-only install would lose or refuse those files.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["ENTRY_FILE", "check_app_folder", "create_app_folder"]

ENTRY_FILE = Path(__file__).resolve().parent / "app" / "main.py"


def create_app_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (or reuse it) with the app's ``main.py``; returns the folder.

    Run the server with ``python -m monailabel.main start_server --app <folder> ...``: the installed bundles,
    fine-tuned weights and logs go there.
    """
    target = Path(folder).expanduser().resolve()
    check_app_folder(target)
    target.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ENTRY_FILE, target / "main.py")
    return target


def check_app_folder(folder: str | os.PathLike) -> Path:
    """``folder`` as an absolute path, once it is known to lie outside the installed package.

    Raises:
        ValueError: the folder is the package's own app folder (or inside the package); the message says
            how to make one.
    """
    path = Path(folder).expanduser().resolve()
    package = ENTRY_FILE.parents[2]  # the monai_mlip package folder
    if path == package or package in path.parents:
        raise ValueError(
            f"the MONAI Label app folder {path} is inside the installed monai_mlip package, where the app's "
            "run-time files (model/, logs/) would land: create a folder of your own with "
            "`python -m monai_mlip.label init /path/to/app` and pass --app /path/to/app"
        )
    return path
