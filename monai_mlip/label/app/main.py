"""The MONAI Label app of monai_mlip: ``python -m monailabel.main start_server --app <this folder> ...``.

MONAI Label loads this file and serves the ``MONAILabelApp`` subclass it finds here; the app itself is
:class:`monai_mlip.label.application.MLIPLabelApp` (its docstring lists the ``--conf`` options). MONAI Label
keeps its run-time folders beside this file (``model/`` with the installed bundles, ``logs/``); copy this
file into a folder of your own to keep them elsewhere.
"""

from monai_mlip.label.application import MLIPLabelApp

__all__ = ["MLIPLabelApp"]
