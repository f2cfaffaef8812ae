"""Writers of the native dataset layouts: MIMIC-CXR-JPG (or DICOM) with MS-CXR boxes, RSNA, SIIM.

Each writer renders ``n`` studies (item ``i`` from its own seed stream, so the output is byte-identical
whatever ``workers`` is), writes the image files (and reports) in worker processes, then writes the
index files in the main process in a fixed order. Identifiers come from a separate stream of the seed.
A finished dataset records its options in ``synthetic-dataset.json``; calling a writer again with the
same options returns at once (the dataset is cached), other options regenerate it.
"""

from __future__ import annotations

import os
from typing import Any

from monai_mlip.synthetic.layouts.common import WriteSummary
from monai_mlip.synthetic.layouts.mimic import write_mimic
from monai_mlip.synthetic.layouts.rsna import write_rsna
from monai_mlip.synthetic.layouts.siim import write_siim

__all__ = ["LAYOUTS", "WriteSummary", "write_layout", "write_mimic", "write_rsna", "write_siim"]

LAYOUTS = ("mimic", "rsna", "siim")


def write_layout(layout: str, out_dir: str | os.PathLike, n: int, **options: Any) -> WriteSummary:
    """Dispatch to :func:`write_mimic`, :func:`write_rsna` or :func:`write_siim` by ``layout`` name."""
    writers = {"mimic": write_mimic, "rsna": write_rsna, "siim": write_siim}
    if layout not in writers:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return writers[layout](out_dir, n, **options)
