"""Zero-shot prompt ensembles: positive and negative sentences per finding.

The pneumonia set is BioViL's (Boecking et al., 2022), used for RSNA Pneumonia. No canonical set exists
for the other findings; the ones here are statements of the finding in report language and their
negations. The pneumothorax set, used for SIIM-ACR, states severity, side and location the way reports
describe a pneumothorax rather than BioViL's "findings consistent with ..." frame (see its comment). The
zero-shot score of a finding is the image's similarity to the averaged positive prompts minus its
similarity to the averaged negative prompts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

__all__ = ["PROMPTS", "PromptSet", "prompts_for"]


class PromptSet(NamedTuple):
    """The positive and negative prompts of one finding."""

    positive: tuple[str, ...]
    negative: tuple[str, ...]


def _set(positive: Sequence[str], negative: Sequence[str]) -> PromptSet:
    return PromptSet(tuple(positive), tuple(negative))


PROMPTS: dict[str, PromptSet] = {
    "Pneumonia": _set(
        [
            "Findings consistent with pneumonia",
            "Findings suggesting pneumonia",
            "This opacity can represent pneumonia",
            "Findings are most compatible with pneumonia",
        ],
        [
            "There is no pneumonia",
            "No evidence of pneumonia",
            "No evidence of acute pneumonia",
            "No signs of pneumonia",
        ],
    ),
    # Severity, side and location, as radiologists describe a pneumothorax (GLoRIA builds its CheXpert
    # prompts the same way), not BioViL's "findings consistent with ..." frame: reports use that frame for
    # pneumonia, and a text tower trained on reports reads it as pneumonia (the comparison of the two sets
    # is in docs/experiments.md).
    "Pneumothorax": _set(
        [
            "Small left apical pneumothorax",
            "Small right apical pneumothorax",
            "Moderate left pneumothorax",
            "Moderate right pneumothorax",
            "There is a large pneumothorax",
            "A pneumothorax is seen with a visible pleural line",
        ],
        [
            "No pneumothorax",
            "There is no pneumothorax",
            "No pleural effusion or pneumothorax",
            "No pneumothorax is seen",
        ],
    ),
    "Pleural Effusion": _set(
        [
            "Findings consistent with pleural effusion",
            "There is a pleural effusion",
            "Blunting of the costophrenic angle from pleural effusion",
            "Findings are most compatible with pleural effusion",
        ],
        [
            "There is no pleural effusion",
            "No evidence of pleural effusion",
            "The costophrenic angles are sharp",
            "No signs of pleural effusion",
        ],
    ),
    "Consolidation": _set(
        [
            "Findings consistent with consolidation",
            "There is a focal consolidation",
            "Airspace consolidation is present",
            "Findings are most compatible with consolidation",
        ],
        [
            "There is no consolidation",
            "No focal consolidation",
            "No evidence of consolidation",
            "The lungs are clear",
        ],
    ),
    "Cardiomegaly": _set(
        [
            "Findings consistent with cardiomegaly",
            "The heart is enlarged",
            "There is cardiomegaly",
            "The cardiac silhouette is enlarged",
        ],
        [
            "There is no cardiomegaly",
            "The heart size is normal",
            "The cardiac silhouette is normal in size",
            "No evidence of cardiomegaly",
        ],
    ),
    "Atelectasis": _set(
        [
            "Findings consistent with atelectasis",
            "There is atelectasis",
            "Linear opacity consistent with atelectasis",
            "Findings are most compatible with atelectasis",
        ],
        ["There is no atelectasis", "No evidence of atelectasis", "No signs of atelectasis", "The lungs are clear"],
    ),
    "Edema": _set(
        [
            "Findings consistent with pulmonary edema",
            "There is pulmonary edema",
            "Interstitial edema is present",
            "Findings are most compatible with pulmonary edema",
        ],
        [
            "There is no pulmonary edema",
            "No evidence of pulmonary edema",
            "No signs of edema",
            "The pulmonary vasculature is normal",
        ],
    ),
    "Lung Lesion": _set(
        [
            "There is a pulmonary nodule",
            "Findings consistent with a lung nodule",
            "A nodular opacity is present",
            "Findings are most compatible with a lung mass",
        ],
        ["There is no pulmonary nodule", "No evidence of a lung nodule", "No nodules", "No lung mass"],
    ),
    "Lung Opacity": _set(
        [
            "There is a lung opacity",
            "Findings consistent with an airspace opacity",
            "An opacity is present in the lung",
            "Findings are most compatible with a pulmonary opacity",
        ],
        ["There is no lung opacity", "The lungs are clear", "No focal opacity", "No evidence of airspace disease"],
    ),
    "Support Devices": _set(
        [
            "A support device is present",
            "There is an endotracheal tube",
            "A central venous catheter is in place",
            "Tubes and lines are present",
        ],
        ["No support devices", "There are no tubes or lines", "No lines or tubes are seen", "No devices are present"],
    ),
}


def prompts_for(
    findings: Sequence[str], custom: Mapping[str, PromptSet | Mapping] | None = None
) -> dict[str, PromptSet]:
    """The prompt sets of ``findings``, ``custom`` ones (``{"positive": [...], "negative": [...]}``) first.

    Raises:
        KeyError: a finding has no built-in set and none is given.
    """
    sets: dict[str, PromptSet] = {}
    for name in findings:
        given = (custom or {}).get(name)
        if given is None and name not in PROMPTS:
            raise KeyError(f"no zero-shot prompts for {name!r}: pass them as {{'positive': [...], 'negative': [...]}}")
        if given is None:
            sets[name] = PROMPTS[name]
        elif isinstance(given, PromptSet):
            sets[name] = given
        else:
            sets[name] = _set(given["positive"], given["negative"])
    return sets
