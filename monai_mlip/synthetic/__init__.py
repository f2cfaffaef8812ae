"""The embedded default dataset: synthetic, format-faithful chest radiographs and MIMIC-style reports.

- :func:`render_study` renders one study in memory: a frontal radiograph (PA or AP) of a sampled
  patient, findings drawn at a location each with its pixel mask, and a report whose positive
  sentences are tied to those findings (:class:`SyntheticStudy`, :class:`Finding`).
- :func:`write_mimic`, :func:`write_rsna` and :func:`write_siim` write datasets in the native layouts
  that :func:`monai_mlip.data.build_mimic_cxr_manifest`, ``build_rsna_manifest``,
  ``build_siim_manifest`` and ``build_ms_cxr_manifest`` read.
- :func:`write_real_size_mimic` writes the MIMIC-CXR-JPG layout at the real image size for any number of
  studies, linking their files to a small rendered pool (for testing the real-size path).
- :func:`write_preview` / :func:`preview_layout` draw a PNG contact sheet to look at.

Command line: ``python -m monai_mlip.synthetic --layout mimic|rsna|siim --out DIR --n N --seed S``.
"""

from monai_mlip.synthetic.findings import DEVICES, FINDINGS, PREVALENCE, Finding, FindingSpec, sample_findings
from monai_mlip.synthetic.layouts import LAYOUTS, WriteSummary, write_layout, write_mimic, write_rsna, write_siim
from monai_mlip.synthetic.preview import preview_layout, write_preview
from monai_mlip.synthetic.real_size import REAL_SIZE, write_real_size_mimic
from monai_mlip.synthetic.reports import MS_CXR_CATEGORIES, Report, Statement
from monai_mlip.synthetic.study import SyntheticStudy, render_study

__all__ = [
    "DEVICES",
    "FINDINGS",
    "LAYOUTS",
    "MS_CXR_CATEGORIES",
    "PREVALENCE",
    "REAL_SIZE",
    "Finding",
    "FindingSpec",
    "Report",
    "Statement",
    "SyntheticStudy",
    "WriteSummary",
    "preview_layout",
    "render_study",
    "sample_findings",
    "write_layout",
    "write_mimic",
    "write_preview",
    "write_real_size_mimic",
    "write_rsna",
    "write_siim",
]
