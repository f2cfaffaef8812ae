"""MIMIC-style radiology reports generated from rendered findings, with CheXpert labels.

Every statement is a sentence together with the CheXpert columns it asserts: a positive finding
sentence asserts 1.0 (-1.0 when hedged: "may represent", "cannot be excluded"), a negation 0.0
("No pleural effusion or pneumothorax."), normal statements and distractors nothing. A study's labels
aggregate its statements the way the CheXpert labeller does (positive over uncertain over negative,
blank when unmentioned) and ``No Finding`` is 1.0 only when nothing is positive or uncertain.

Each positive finding sentence is stored on its :class:`~.findings.Finding` (``sentence`` for the
FINDINGS section, ``impression`` for the IMPRESSION), so it stays tied to the finding's mask. Finding
sentences never hold ``___`` placeholders, abbreviations with full stops or list markers, so
:func:`monai_mlip.data.split_sentences` returns them verbatim. Only the header sections (indication,
comparison) and a notification sentence carry ``___`` PHI placeholders.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS  # the reader's list: one source of the columns
from monai_mlip.synthetic.anatomy import Anatomy
from monai_mlip.synthetic.findings import Finding

__all__ = ["MS_CXR_CATEGORIES", "Report", "Statement", "aggregate_labels", "write_report"]

MS_CXR_CATEGORIES = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Lung Opacity",
    "Pleural effusion",
    "Pneumonia",
    "Pneumothorax",
)

ATL, CMG, CON, EDE, ECM, FRA, LES, OPA, NOF, EFF, PLO, PNA, PTX, DEV = CHEXPERT_LABELS


@dataclass
class Statement:
    """One report sentence and the CheXpert columns it asserts (column -> 1.0, 0.0 or -1.0)."""

    text: str
    labels: dict[str, float] = field(default_factory=dict)


@dataclass
class Report:
    """A generated report.

    Attributes:
        text: the whole report file (MIMIC layout).
        findings: FINDINGS section statements, in order.
        impression: IMPRESSION section statements, in order.
        labels: CheXpert columns to 1.0 / 0.0 / -1.0 / NaN (blank), in :data:`CHEXPERT_LABELS` order.
    """

    text: str
    findings: list[Statement]
    impression: list[Statement]
    labels: dict[str, float]


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# --- locations and severities ------------------------------------------------------------------------

# (preposition + noun, adjective) phrases per side and zone. Bilateral findings use "both"/"bibasilar".
_LOCATIONS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {}
for _side in ("right", "left"):
    _LOCATIONS[(_side, "upper")] = (
        (f"in the {_side} upper lobe", f"{_side} upper lobe"),
        (f"in the {_side} upper lung", f"{_side} upper lung"),
        (f"in the {_side} upper zone", f"{_side} upper zone"),
    )
    _LOCATIONS[(_side, "lower")] = (
        (f"in the {_side} lower lobe", f"{_side} lower lobe"),
        (f"at the {_side} lung base", f"{_side} basilar"),
        (f"at the {_side} base", f"{_side} basal"),
    )
_LOCATIONS[("right", "middle")] = (
    ("in the right middle lobe", "right middle lobe"),
    ("in the right mid lung", "right mid lung"),
)
_LOCATIONS[("left", "middle")] = (("in the lingula", "lingular"), ("in the left mid lung", "left mid lung"))
_LOCATIONS[("bilateral", "upper")] = (("in both upper lobes", "bilateral upper lobe"),)
_LOCATIONS[("bilateral", "middle")] = (("in both mid lungs", "bilateral mid lung"),)
_LOCATIONS[("bilateral", "lower")] = (
    ("at both lung bases", "bibasilar"),
    ("in both lower lobes", "bilateral lower lobe"),
)


def _location(rng: np.random.Generator, finding: Finding) -> tuple[str, str]:
    return _pick(rng, _LOCATIONS[(finding.side, finding.zone or "lower")])


def _grade(severity: float, words: Sequence[str]) -> str:
    return words[min(int(severity * len(words)), len(words) - 1)]


def _opacity_word(rng: np.random.Generator, severity: float) -> str:
    return _pick(
        rng, _grade(severity, (("subtle", "faint"), ("mild", "patchy"), ("moderate",), ("extensive", "dense")))
    )


def _size_word(severity: float, smallest: str = "tiny") -> str:
    return _grade(severity, (smallest, "small", "small", "moderate", "large"))


def _adverb(severity: float) -> str:
    return _grade(severity, ("mildly", "moderately", "severely"))


# --- finding sentences -------------------------------------------------------------------------------


def _pneumonia(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    loc, adj = _location(rng, f)
    sev = _opacity_word(rng, f.severity)
    plural = f.side == "bilateral"
    opacity, consolidation = ("opacities", "consolidations") if plural else ("opacity", "consolidation")
    verb = "are" if plural else "is"
    if f.uncertain:
        options = [
            (f"{_cap(sev)} {opacity} {loc} may represent early pneumonia.", {OPA: 1.0, PNA: -1.0}),
            (f"Subtle {opacity} {loc}, pneumonia cannot be excluded.", {OPA: 1.0, PNA: -1.0}),
            (f"Possible {sev} consolidation {loc}.", {CON: -1.0}),
            (
                f"Hazy {opacity} {loc} could reflect atelectasis, although infection cannot be excluded.",
                {OPA: 1.0, ATL: -1.0, PNA: -1.0},
            ),
        ]
        impressions = [
            (f"Possible {adj} pneumonia.", {PNA: -1.0}),
            (f"{_cap(adj)} {opacity}, pneumonia not excluded.", {OPA: 1.0, PNA: -1.0}),
        ]
    else:
        options = [
            (f"There is {sev} consolidation {loc}.", {CON: 1.0}),
            (f"{_cap(sev)} airspace {opacity} {loc} {verb} concerning for pneumonia.", {OPA: 1.0, PNA: 1.0}),
            (f"{_cap(sev)} consolidation {loc} is consistent with pneumonia.", {CON: 1.0, PNA: 1.0}),
            (f"{_cap(sev)} {opacity} {verb} seen {loc}, compatible with pneumonia.", {OPA: 1.0, PNA: 1.0}),
            (f"{_cap(adj)} airspace {consolidation}.", {CON: 1.0}),
            (f"{_cap(sev)} airspace {opacity} {loc}.", {OPA: 1.0}),
        ]
        if not plural:
            options[3] = (
                f"{_cap(_article(sev))} {sev} opacity is seen {loc}, compatible with pneumonia.",
                {OPA: 1.0, PNA: 1.0},
            )
        impressions = [
            (f"{_cap(adj)} pneumonia.", {PNA: 1.0}),
            (f"Findings consistent with {adj} pneumonia.", {PNA: 1.0}),
            (f"{_cap(adj)} consolidation concerning for pneumonia.", {CON: 1.0, PNA: 1.0}),
        ]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _pneumothorax(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    size = _size_word(f.severity)
    where = "apical " if f.zone == "apical" else ""
    if f.uncertain:
        options = [
            (f"A {size} {f.side} {where}pneumothorax cannot be excluded.", {PTX: -1.0}),
            (f"Possible {size} {f.side} {where}pneumothorax.", {PTX: -1.0}),
            (
                f"Lucency at the {f.side} {'apex' if where else 'lung periphery'} may represent a small pneumothorax.",
                {PTX: -1.0},
            ),
        ]
        impressions = [(f"Possible {f.side} pneumothorax.", {PTX: -1.0})]
    else:
        options = [
            (f"There is {_article(size)} {size} {f.side} {where}pneumothorax.", {PTX: 1.0}),
            (f"{_cap(size)} {f.side} {where}pneumothorax is present.", {PTX: 1.0}),
            (f"{_cap(_article(size))} {size} {f.side} pneumothorax is seen with a visible pleural line.", {PTX: 1.0}),
            (f"{_cap(size)} {f.side} {where}pneumothorax.", {PTX: 1.0}),
        ]
        impressions = [
            (f"{_cap(size)} {f.side} {where}pneumothorax.", {PTX: 1.0}),
            (f"{_cap(f.side)}-sided pneumothorax.", {PTX: 1.0}),
        ]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _pleural_effusion(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    size = _size_word(f.severity, "trace")
    both = f.side == "bilateral"
    noun = "pleural effusions" if both else "pleural effusion"
    where = "bilateral" if both else f.side
    angle = "both costophrenic angles" if both else f"the {f.side} costophrenic angle"
    if f.uncertain:
        options = [
            (f"Blunting of {angle} may reflect a small effusion or pleural thickening.", {EFF: -1.0, PLO: -1.0}),
            (f"Possible {size} {where} {noun}.", {EFF: -1.0}),
        ]
        impressions = [(f"Possible {where} {noun}.", {EFF: -1.0})]
    else:
        options = [
            (
                f"There {'are' if both else 'is'} {'' if both else _article(size) + ' '}{size} {where} {noun}.",
                {EFF: 1.0},
            ),
            (f"{_cap(size)} {where} {noun} {'are' if both else 'is'} present.", {EFF: 1.0}),
            (f"{_cap(size)} {where} {noun} with blunting of {angle}.", {EFF: 1.0}),
        ]
        if f.severity < 0.45:
            options.append((f"Blunting of {angle} is consistent with {'' if both else 'a '}{size} {noun}.", {EFF: 1.0}))
        impressions = [(f"{_cap(size)} {where} {noun}.", {EFF: 1.0})]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _cardiomegaly(rng: np.random.Generator, f: Finding, view: str) -> tuple[Statement, Statement | None]:
    degree = _grade(f.severity, ("mild", "moderate", "severe"))
    if f.uncertain:
        options = [("The heart size is borderline enlarged.", {CMG: -1.0})]
        if view == "AP":
            options.append(
                ("The heart may be mildly enlarged, though this is accentuated by the AP technique.", {CMG: -1.0})
            )
        impressions = [("Possible mild cardiomegaly.", {CMG: -1.0})]
    else:
        options = [
            (f"The heart is {_adverb(f.severity)} enlarged.", {CMG: 1.0}),
            (f"{_cap(degree)} cardiomegaly.", {CMG: 1.0}),
            (f"The cardiac silhouette is {_adverb(f.severity)} enlarged.", {CMG: 1.0}),
            (f"There is {degree} enlargement of the cardiac silhouette.", {CMG: 1.0}),
        ]
        impressions = [(f"{_cap(degree)} cardiomegaly.", {CMG: 1.0}), ("Cardiomegaly.", {CMG: 1.0})]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _atelectasis(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    loc, adj = _location(rng, f)
    sev = _grade(f.severity, ("minimal", "mild", "moderate"))
    if f.uncertain:
        options = [
            (f"{_cap(sev)} opacity {loc} may reflect atelectasis.", {OPA: 1.0, ATL: -1.0}),
            (
                f"Patchy opacity {loc} likely reflects atelectasis, though infection cannot be excluded.",
                {OPA: 1.0, ATL: -1.0, PNA: -1.0},
            ),
        ]
        impressions = [(f"{_cap(adj)} opacity, possibly atelectasis.", {OPA: 1.0, ATL: -1.0})]
    else:
        kind = _pick(rng, ("Plate-like", "Linear", "Subsegmental")) if f.subtype == "plate" else "Patchy"
        options = [
            (f"{kind} atelectasis {loc}.", {ATL: 1.0}),
            (f"There is {sev} {kind.lower()} atelectasis {loc}.", {ATL: 1.0}),
            (f"{_cap(sev)} {adj} atelectasis.", {ATL: 1.0}),
        ]
        if f.subtype == "patchy":
            options.append((f"Streaky opacities {loc} are consistent with atelectasis.", {OPA: 1.0, ATL: 1.0}))
        impressions = [(f"{_cap(adj)} atelectasis.", {ATL: 1.0}), (f"{_cap(sev)} {adj} atelectasis.", {ATL: 1.0})]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _edema(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    sev = _grade(f.severity, ("mild", "moderate", "severe"))
    if f.uncertain:
        options = [
            ("Mild perihilar haziness may reflect early pulmonary edema.", {EDE: -1.0}),
            ("Possible mild interstitial edema.", {EDE: -1.0}),
        ]
        impressions = [("Possible mild pulmonary edema.", {EDE: -1.0})]
    else:
        options = [
            (f"{_cap(sev)} pulmonary edema.", {EDE: 1.0}),
            (f"There is {sev} interstitial pulmonary edema.", {EDE: 1.0}),
            (f"Perihilar haziness and vascular indistinctness are consistent with {sev} pulmonary edema.", {EDE: 1.0}),
        ]
        if f.severity > 0.4:
            options.append((f"{_cap(sev)} pulmonary edema with Kerley B lines at the lung bases.", {EDE: 1.0}))
        impressions = [
            (f"{_cap(sev)} pulmonary edema.", {EDE: 1.0}),
            (f"Findings consistent with {sev} pulmonary edema.", {EDE: 1.0}),
        ]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _nodule(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    loc, adj = _location(rng, f)
    size = f"{int(f.details['size_mm'])} mm"
    if f.uncertain:
        options = [
            (f"A possible {size} nodule {loc} could be further evaluated with chest CT.", {LES: -1.0}),
            (f"Questionable nodular opacity {loc}.", {LES: -1.0}),
        ]
        impressions = [(f"Possible {adj} nodule, consider chest CT.", {LES: -1.0})]
    else:
        options = [
            (f"There is a {size} nodule {loc}.", {LES: 1.0}),
            (f"A {size} pulmonary nodule is seen {loc}.", {LES: 1.0}),
            (f"A {size} nodular opacity is present {loc}.", {LES: 1.0}),
        ]
        impressions = [
            (f"{_cap(adj)} pulmonary nodule.", {LES: 1.0}),
            (f"{_cap(adj)} nodule measuring {size}, chest CT recommended.", {LES: 1.0}),
        ]
    return Statement(*_pick(rng, options)), Statement(*_pick(rng, impressions))


def _device(rng: np.random.Generator, f: Finding) -> tuple[Statement, Statement | None]:
    d, side = f.details, f.side
    labels = {DEV: 1.0}
    impression = None
    if f.subtype == "endotracheal_tube":
        cm = f"{float(d['tip_cm']):g} cm"
        text = _pick(
            rng,
            (
                f"Endotracheal tube terminates {cm} above the carina.",
                f"The endotracheal tube tip is {cm} above the carina.",
                f"An endotracheal tube is in standard position, {cm} above the carina.",
            ),
        )
        impression = Statement("Endotracheal tube in standard position.", dict(labels))
    elif f.subtype == "enteric_tube":
        text = _pick(
            rng,
            (
                "An enteric tube courses below the diaphragm with the tip in the stomach.",
                "Nasogastric tube tip is in the stomach.",
                "Enteric tube passes below the diaphragm into the stomach.",
            ),
        )
    elif f.subtype == "central_line":
        text = _pick(
            rng,
            (
                f"{_cap(side)} {d['access']} central venous catheter terminates in the {d['tip']}.",
                f"{_cap(side)} {d['access']} line tip projects over the {d['tip']}.",
            ),
        )
    elif f.subtype == "picc":
        text = _pick(
            rng,
            (
                f"{_cap(side)}-sided PICC terminates in the {d['tip']}.",
                f"{_cap(side)} PICC line tip projects over the {d['tip']}.",
            ),
        )
    elif f.subtype == "pacemaker":
        text = _pick(
            rng,
            (
                f"Left-sided pacemaker device with leads terminating in the {d['leads']}.",
                f"A left chest wall pacemaker has leads in the {d['leads']}.",
            ),
        )
    else:
        text = _pick(
            rng,
            (
                f"{_cap(side)} chest tube is in place with the tip at the apex.",
                f"A {side}-sided chest tube terminates near the {side} apex.",
            ),
        )
    return Statement(text, labels), impression


def _category(finding: Finding, labels: dict[str, float]) -> str:
    """The MS-CXR category of a certain finding sentence, ``""`` when none applies."""
    if finding.uncertain:
        return ""
    if finding.name == "pneumonia":
        return "Pneumonia" if labels.get(PNA) == 1.0 else "Consolidation" if labels.get(CON) == 1.0 else "Lung Opacity"
    return {
        "pneumothorax": "Pneumothorax",
        "pleural_effusion": "Pleural effusion",
        "cardiomegaly": "Cardiomegaly",
        "atelectasis": "Atelectasis",
        "edema": "Edema",
    }.get(finding.name, "")


def _describe(rng: np.random.Generator, finding: Finding, view: str) -> tuple[Statement, Statement | None]:
    if finding.name == "pneumonia":
        return _pneumonia(rng, finding)
    if finding.name == "pneumothorax":
        return _pneumothorax(rng, finding)
    if finding.name == "pleural_effusion":
        return _pleural_effusion(rng, finding)
    if finding.name == "cardiomegaly":
        return _cardiomegaly(rng, finding, view)
    if finding.name == "atelectasis":
        return _atelectasis(rng, finding)
    if finding.name == "edema":
        return _edema(rng, finding)
    if finding.name == "nodule":
        return _nodule(rng, finding)
    return _device(rng, finding)


# --- normal statements, negations, distractors ------------------------------------------------------


def _negations(rng: np.random.Generator, present: set[str], anatomy: Anatomy) -> list[Statement]:
    """Statements about what is absent (only for absent findings) and normal structures."""
    out: list[Statement] = []
    lung_findings = {"pneumonia", "atelectasis", "edema", "nodule", "pneumothorax", "pleural_effusion"}
    if not present & lung_findings and rng.random() < 0.8:
        clear = "The lungs are clear." if anatomy.lung_volume != "normal" else "Lungs are well expanded and clear."
        out.append(
            Statement(_pick(rng, ("The lungs are clear.", clear, "Lungs are clear without focal consolidation.")))
        )
        if "without focal" in out[-1].text:
            out[-1].labels[CON] = 0.0
    if "pneumonia" not in present and rng.random() < 0.5:
        out.append(
            _pick(
                rng,
                (
                    Statement("No focal consolidation.", {CON: 0.0}),
                    Statement("There is no focal consolidation to suggest pneumonia.", {CON: 0.0, PNA: 0.0}),
                    Statement("No consolidation concerning for pneumonia.", {CON: 0.0, PNA: 0.0}),
                ),
            )
        )
    no_effusion, no_ptx = "pleural_effusion" not in present, "pneumothorax" not in present
    if no_effusion and no_ptx and rng.random() < 0.85:
        out.append(
            _pick(
                rng,
                (
                    Statement("No pleural effusion or pneumothorax.", {EFF: 0.0, PTX: 0.0}),
                    Statement("There is no pleural effusion or pneumothorax.", {EFF: 0.0, PTX: 0.0}),
                    Statement("No pneumothorax or pleural effusion is seen.", {EFF: 0.0, PTX: 0.0}),
                ),
            )
        )
    elif no_ptx and rng.random() < 0.8:
        out.append(
            _pick(rng, (Statement("No pneumothorax.", {PTX: 0.0}), Statement("There is no pneumothorax.", {PTX: 0.0})))
        )
    elif no_effusion and rng.random() < 0.7:
        out.append(
            _pick(
                rng,
                (Statement("No pleural effusion.", {EFF: 0.0}), Statement("There is no pleural effusion.", {EFF: 0.0})),
            )
        )
    if "edema" not in present and rng.random() < 0.35:
        out.append(
            _pick(
                rng,
                (Statement("No pulmonary edema.", {EDE: 0.0}), Statement("There is no pulmonary edema.", {EDE: 0.0})),
            )
        )
    if "cardiomegaly" not in present and rng.random() < 0.85:
        out.append(
            _pick(
                rng,
                (
                    Statement("Heart size is normal.", {CMG: 0.0}),
                    Statement("The heart is not enlarged.", {CMG: 0.0}),
                    Statement("The cardiomediastinal silhouette is within normal limits.", {ECM: 0.0}),
                    Statement("Cardiac and mediastinal silhouettes are unremarkable.", {ECM: 0.0}),
                ),
            )
        )
    if rng.random() < 0.4:
        out.append(
            Statement(_pick(rng, ("Mediastinal and hilar contours are unremarkable.", "Hilar contours are normal.")))
        )
    if rng.random() < 0.3:
        out.append(
            _pick(
                rng,
                (
                    Statement("No acute osseous abnormality."),
                    Statement("No displaced rib fracture is seen.", {FRA: 0.0}),
                ),
            )
        )
    return out


def _distractors(rng: np.random.Generator, anatomy: Anatomy) -> list[Statement]:
    """Label-free remarks about what the film shows anyway (lung volume, aortic calcification, the spine)."""
    out = []
    if anatomy.lung_volume == "low" and rng.random() < 0.6:
        out.append(
            Statement(
                _pick(rng, ("Lung volumes are low.", "Low lung volumes accentuate the bronchovascular markings."))
            )
        )
    if anatomy.lung_volume == "high" and rng.random() < 0.6:
        out.append(Statement("The lungs are hyperinflated with flattening of the hemidiaphragms."))
    if anatomy.aortic_calcification and rng.random() < 0.7:
        out.append(
            Statement(
                _pick(
                    rng,
                    ("Calcification of the aortic knob is noted.", "Atherosclerotic calcification of the aortic arch."),
                )
            )
        )
    if rng.random() < 0.15:
        out.append(Statement("Mild degenerative changes are noted in the thoracic spine."))
    return out


def aggregate_labels(statements: Sequence[Statement]) -> dict[str, float]:
    """CheXpert labels of a report: per column positive over uncertain over negative, NaN when unmentioned.

    ``No Finding`` is 1.0 when no other column is positive or uncertain, else NaN.
    """
    labels = {column: math.nan for column in CHEXPERT_LABELS}
    rank = {1.0: 3, -1.0: 2, 0.0: 1}
    for statement in statements:
        for column, value in statement.labels.items():
            if math.isnan(labels[column]) or rank[value] > rank[labels[column]]:
                labels[column] = value
    if not any(labels[c] in (1.0, -1.0) for c in CHEXPERT_LABELS if c != NOF):
        labels[NOF] = 1.0
    return labels


# --- layout ------------------------------------------------------------------------------------------------

_INDICATIONS = (
    "___ year old man with cough and fever",
    "___ year old woman with shortness of breath",
    "___F with chest pain",
    "___M with hypoxia",
    "___ year old man status post fall",
    "History: ___M with dyspnea",
    "___ year old woman with fever, evaluate for pneumonia",
    "___F with weakness",
    "___M with tachycardia and hypotension",
    "___ year old man preoperative evaluation",
    "___ year old woman with altered mental status",
    "Evaluate for acute cardiopulmonary process",
)
_NO_FINDING_IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "No acute intrathoracic process.",
    "No acute cardiopulmonary abnormality.",
    "Normal chest radiograph.",
)
_ORDER = (
    "pneumothorax",
    "pneumonia",
    "pleural_effusion",
    "edema",
    "cardiomegaly",
    "atelectasis",
    "nodule",
    "support_device",
)


def _wrap(paragraph: str) -> list[str]:
    return textwrap.wrap(
        paragraph, width=78, initial_indent=" ", subsequent_indent=" ", break_long_words=False, break_on_hyphens=False
    )


def _section(header: str, statements: Sequence[Statement], numbered: bool) -> list[str]:
    lines = [f" {header}: ", " "]
    if numbered:
        for number, statement in enumerate(statements, start=1):
            lines += _wrap(f"{number}. {statement.text}")
    else:
        lines += _wrap("  ".join(s.text for s in statements))
    return lines


def write_report(
    findings: Sequence[Finding], anatomy: Anatomy, rng: np.random.Generator, lateral: bool = False
) -> Report:
    """Describe the rendered findings in a MIMIC-style report and set their sentences and labels.

    Sets ``sentence``, ``impression``, ``labels`` and ``category`` of every finding.

    Args:
        findings: the study's findings (their side, zone, severity, hedging and details).
        anatomy: the patient (view, lung volume and other label-free remarks).
        rng: the study's report generator.
        lateral: the study also has a lateral view.

    Returns:
        The :class:`Report` with its text and CheXpert labels.
    """
    view = anatomy.view
    present = {f.name for f in findings if f.name != "support_device"}
    ordered = sorted(findings, key=lambda f: _ORDER.index(f.name))
    finding_statements, impressions = [], []
    for finding in ordered:
        sentence, impression = _describe(rng, finding, view)
        # The impression repeats the leading finding, and the others often.
        leading = finding is next((f for f in ordered if f.name != "support_device"), None)
        chance = 0.5 if finding.name in ("atelectasis", "nodule", "support_device") else 0.9
        keep_impression = impression is not None and (rng.random() < chance or leading)
        finding.sentence = sentence.text
        finding.impression = impression.text if keep_impression else ""
        finding.labels = {
            c: v
            for c, v in aggregate_labels([sentence] + ([impression] if keep_impression else [])).items()
            if not math.isnan(v) and c != NOF
        }
        if keep_impression:
            impressions.append(impression)
        finding.category = _category(finding, sentence.labels)
        finding_statements.append(sentence)
    devices = [s for s, f in zip(finding_statements, ordered, strict=True) if f.name == "support_device"]
    others = [s for s, f in zip(finding_statements, ordered, strict=True) if f.name != "support_device"]
    body = devices + others + _negations(rng, present, anatomy) + _distractors(rng, anatomy)
    if rng.random() < 0.3:
        technique = "PA and lateral views of the chest provided." if lateral else f"Single {view} view of the chest."
        body.insert(0, Statement(technique))
    if not impressions:
        impressions = [Statement(_pick(rng, _NO_FINDING_IMPRESSIONS))]
        if not present and rng.random() < 0.3:
            impressions.append(Statement("No evidence of pneumonia.", {PNA: 0.0}))
    if present & {"pneumothorax", "pneumonia"} and rng.random() < 0.25:
        impressions.append(Statement("Findings were discussed with Dr. ___ by telephone at ___ on ___."))
    examination = "CHEST (PA AND LAT)" if lateral else "CHEST (PORTABLE AP)" if view == "AP" else "CHEST (PA)"
    lines = [
        " " * 33 + "FINAL REPORT",
        f" EXAMINATION:  {examination}",
        " ",
        f" INDICATION:  {_pick(rng, _INDICATIONS)}",
        " ",
    ]
    if rng.random() < 0.5:
        technique = "Chest PA and lateral" if lateral else f"Single frontal view of the chest ({view})"
        lines += [f" TECHNIQUE:  {technique}", " "]
    lines += [f" COMPARISON:  {_pick(rng, ('___', '___.', 'None.', 'Chest radiograph ___'))}", " "]
    numbered = len(impressions) > 1 and rng.random() < 0.35
    if rng.random() < 0.05:
        merged = body + impressions
        lines += _section("FINDINGS AND IMPRESSION", merged, False)
    else:
        lines += [*_section("FINDINGS", body, False), " ", *_section("IMPRESSION", impressions, numbered)]
    text = "\n".join(lines) + "\n"
    return Report(text=text, findings=body, impression=impressions, labels=aggregate_labels(body + impressions))
