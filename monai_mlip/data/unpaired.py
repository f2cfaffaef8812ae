"""Unpaired pre-training data (MMCLIP, Wu et al.): images with labels but no report, reports without images.

MMCLIP trains on image-report pairs and on the two unpaired kinds: an image with disease labels gets a
disease prompt as its text (then it is a pair for every term), and a report without an image trains the
entity-driven masked language modelling alone. Here every item of a mixed manifest carries ``has_image``;
:class:`~monai_mlip.data.LoadCXRd` with ``blank_size`` gives a report without an image a blank picture, the
model passes ``has_image`` on, and the terms that need an image leave those reports out
(:attr:`~monai_mlip.losses.ObjectiveTerm.takes_unpaired`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["disease_prompt", "image_only_items", "mix_unpaired", "report_only_items"]

POSITIVE_PROMPT = "Findings consistent with {finding}."
NEGATIVE_PROMPT = "No {finding}."


def disease_prompt(
    labels: Mapping[str, int | float], positive: str = POSITIVE_PROMPT, negative: str = NEGATIVE_PROMPT
) -> str:
    """The text of an image known by its labels: one sentence per finding (``{finding}`` in lower case).

    Args:
        labels: finding name -> 1 (present) or 0 (absent).
        positive: the template of a present finding.
        negative: the template of an absent one.
    """
    if not labels:
        raise ValueError("an image-only item needs at least one label to make its prompt")
    return " ".join(
        (positive if value else negative).format(finding=finding.lower()) for finding, value in labels.items()
    )


def image_only_items(
    items: Iterable[Mapping[str, Any]],
    findings: Mapping[str, str],
    positive: str = POSITIVE_PROMPT,
    negative: str = NEGATIVE_PROMPT,
) -> list[dict[str, Any]]:
    """Items of a labelled image dataset (RSNA, SIIM, ...) as image-prompt pairs.

    Args:
        items: manifest items with ``image`` and the label keys.
        findings: finding name -> the item key holding its 0/1 label (``{"Pneumonia": "label"}``).
        positive: the prompt template of a present finding (:func:`disease_prompt`).
        negative: the template of an absent one.

    Returns:
        Items with ``image``, ``report`` (the prompt, :func:`disease_prompt`), ``study_id`` and ``has_image``.
    """
    out = []
    for number, item in enumerate(items):
        labels = {finding: int(item[key]) for finding, key in findings.items()}
        name = item.get("patient_id", item.get("study_id", number))
        out.append(
            {
                "image": item["image"],
                "report": disease_prompt(labels, positive, negative),
                "study_id": f"image:{name}",
                "has_image": True,
            }
        )
    return out


def report_only_items(reports: Iterable[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Reports without an image (texts, or items with ``report`` and an optional ``study_id``)."""
    out = []
    for number, report in enumerate(reports):
        text, name = (report, number) if isinstance(report, str) else (report["report"], report.get("study_id", number))
        out.append({"image": None, "report": text, "study_id": f"report:{name}", "has_image": False})
    return out


def mix_unpaired(
    paired: Sequence[Mapping[str, Any]],
    image_only: Sequence[Mapping[str, Any]] = (),
    report_only: Sequence[Mapping[str, Any]] = (),
    report_only_fraction: float = 0.0,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One manifest of paired, image-only and report-only items, each with ``has_image``.

    Args:
        paired: image-report items.
        image_only: items from :func:`image_only_items`.
        report_only: items from :func:`report_only_items`.
        report_only_fraction: the share of the paired studies whose images are dropped, to rehearse
            reports without images on a paired dataset (all images of a drawn study go).
        seed: the draw of those studies.
    """
    if not 0.0 <= report_only_fraction < 1.0:
        raise ValueError(f"report_only_fraction must be in [0, 1), got {report_only_fraction}")
    studies = sorted({str(item.get("study_id", number)) for number, item in enumerate(paired)})
    rng = np.random.default_rng(seed)
    dropped = set(rng.permutation(studies)[: round(report_only_fraction * len(studies))].tolist())
    mixed, reported = [], set()
    for number, item in enumerate(paired):
        study = str(item.get("study_id", number))
        if study not in dropped:
            mixed.append({**item, "has_image": True})
        elif study not in reported:  # one report per study, however many images it had
            reported.add(study)
            mixed.extend(report_only_items([{"report": item["report"], "study_id": study}]))
    return mixed + [dict(item) for item in image_only] + [dict(item) for item in report_only]
