"""The MONAI Label app of monai_mlip: ``python -m monailabel.main start_server --app <app folder> ...``.

``python -m monai_mlip.label init <app folder>`` copies this file into a folder of yours; MONAI Label loads
it from there, serves the ``MONAILabelApp`` subclass it finds, and keeps its run-time folders beside it
(``model/`` with the installed bundles and their fine-tuned weights, ``logs/``). The app itself is
:class:`monai_mlip.label.application.MLIPLabelApp` (its docstring lists the ``--conf`` options); it refuses
to run from inside the installed package.
"""

from monai_mlip.label.application import MLIPLabelApp

__all__ = ["MLIPLabelApp"]
