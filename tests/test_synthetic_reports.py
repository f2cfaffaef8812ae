"""Generated reports: the MIMIC layout, sentences the report parser recovers, CheXpert labels."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from monai.metrics import compute_roc_auc
from torch.nn import functional as F

from monai_mlip.data import clean_text, parse_report, report_text, split_sentences, tokenize_sentences
from monai_mlip.data.manifests.mimic import CHEXPERT_LABELS
from monai_mlip.losses import global_contrastive_loss
from monai_mlip.networks import build_tiny_text_model, create_mlip
from monai_mlip.synthetic import FindingSpec, Statement, render_study
from monai_mlip.synthetic.reports import aggregate_labels
from monai_mlip.zero_shot import ZeroShotClassifier

# Which column each finding's sentences must assert (1.0, or -1.0 when hedged).
MAIN_LABEL = {
    "pneumothorax": "Pneumothorax",
    "pleural_effusion": "Pleural Effusion",
    "cardiomegaly": "Cardiomegaly",
    "edema": "Edema",
    "nodule": "Lung Lesion",
    "support_device": "Support Devices",
}
NEGATION = re.compile(r"^(no|there is no|there are no)\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def studies():
    return [render_study(np.random.default_rng([7, i]), 48, lateral=i % 7 == 0) for i in range(400)]


def test_report_layout(studies):
    text = studies[0].report.text
    lines = text.split("\n")
    assert lines[0].strip() == "FINAL REPORT" and lines[0].startswith(" " * 20)
    for header in ("EXAMINATION", "INDICATION", "COMPARISON"):
        assert re.search(rf"\n {header}:\s", text)
    for study in studies:
        text = study.report.text
        assert re.search(r"\n (FINDINGS|FINDINGS AND IMPRESSION):\s", text)
        assert all(len(line) <= 80 for line in text.split("\n")[1:])
        assert all(line.startswith(" ") or not line for line in text.split("\n")[1:])
    assert sum(bool(re.search(r"\n IMPRESSION:\s", s.report.text)) for s in studies) > 300
    assert sum("___" in s.report.text for s in studies) > 300, "PHI placeholders are part of the MIMIC layout"


def test_every_finding_sentence_survives_the_report_parser(studies):
    """Positive sentences come back verbatim from parse_report -> report_text -> split_sentences."""
    checked = 0
    for study in studies:
        recovered = split_sentences(report_text(parse_report(study.report.text)))
        for finding in study.findings:
            assert finding.sentence, finding
            for sentence in (finding.sentence, finding.impression):
                if sentence:
                    assert "___" not in sentence
                    assert clean_text(sentence) in recovered, (sentence, recovered)
                    checked += 1
    assert checked > 300


def test_labels_follow_the_sentences(studies):
    for study in studies:
        labels = study.labels
        assert list(labels) == list(CHEXPERT_LABELS)
        assert all(math.isnan(v) or v in (1.0, 0.0, -1.0) for v in labels.values())
        assert labels == aggregate_labels(study.report.findings + study.report.impression)
        for finding in study.findings:
            column = MAIN_LABEL.get(finding.name)
            if column is not None:
                assert labels[column] in ((1.0, -1.0) if finding.uncertain else (1.0,)), (finding.sentence, labels)
            if not finding.uncertain:
                assert 1.0 in finding.labels.values()
            else:
                assert -1.0 in finding.labels.values()
        positive = {c for c, v in labels.items() if v in (1.0, -1.0) and c != "No Finding"}
        assert (labels["No Finding"] == 1.0) == (not positive)
        assert (labels["No Finding"] == 1.0) == (not study.findings)


def test_pneumonia_wording_sets_its_columns(studies):
    seen = set()
    for study in studies:
        for finding in (f for f in study.findings if f.name == "pneumonia"):
            sentences = " ".join([finding.sentence, finding.impression]).lower()
            for word, column in (
                ("pneumonia", "Pneumonia"),
                ("consolidation", "Consolidation"),
                ("opacit", "Lung Opacity"),
            ):
                if word in sentences:
                    assert column in finding.labels, (sentences, finding.labels)
                    seen.add(column)
            if finding.uncertain:
                assert any(w in sentences for w in ("may", "possible", "cannot be excluded", "not excluded", "could"))
    assert seen == {"Pneumonia", "Consolidation", "Lung Opacity"}


def test_negations_only_for_absent_findings(studies):
    words = {
        "pneumothorax": "pneumothorax",
        "pleural_effusion": "effusion",
        "edema": "edema",
        "pneumonia": "consolidation",
    }
    negated = 0
    for study in studies:
        present = {f.name for f in study.findings}
        for statement in study.report.findings + study.report.impression:
            if NEGATION.match(statement.text):
                negated += 1
                assert all(value == 0.0 for value in statement.labels.values())
                for name, word in words.items():
                    if name in present:
                        assert word not in statement.text.lower(), (statement.text, present)
    assert negated > 200


def test_impression_names_a_finding_when_there_is_one(studies):
    for study in studies:
        lesions = [f for f in study.findings if f.name != "support_device"]
        if lesions:
            assert any(f.impression for f in lesions), "the impression repeats the leading finding"
            assert not any("No acute" in s.text for s in study.report.impression)


def test_uncertain_and_normal_statements_occur(studies):
    texts = [s.report.text for s in studies]
    assert any("cannot be excluded" in t for t in texts)
    assert any("No pleural effusion or pneumothorax." in t for t in texts)
    assert any("No acute cardiopulmonary process." in t for t in texts)
    assert sum(-1.0 in s.labels.values() for s in studies) > 20
    # Reports describe the same finding in different words.
    pneumothorax = {f.sentence for s in studies for f in s.findings if f.name == "pneumothorax"}
    assert len(pneumothorax) > 10


def test_aggregate_labels_precedence():
    labels = aggregate_labels(
        [
            Statement("No pleural effusion.", {"Pleural Effusion": 0.0}),
            Statement("Possible small effusion.", {"Pleural Effusion": -1.0}),
            Statement("There is a right pneumothorax.", {"Pneumothorax": 1.0}),
            Statement("No pneumothorax.", {"Pneumothorax": 0.0}),
            Statement("Heart size is normal.", {"Cardiomegaly": 0.0}),
        ]
    )
    assert labels["Pleural Effusion"] == -1.0 and labels["Pneumothorax"] == 1.0 and labels["Cardiomegaly"] == 0.0
    assert math.isnan(labels["Edema"]) and math.isnan(labels["No Finding"])
    assert aggregate_labels([Statement("The lungs are clear.")])["No Finding"] == 1.0


def test_device_sentence_measures_the_tube():
    study = render_study(
        np.random.default_rng(3), 128, findings=[FindingSpec("support_device", subtype="endotracheal_tube")]
    )
    (tube,) = study.findings
    assert f"{float(tube.details['tip_cm']):g} cm above the carina" in tube.sentence
    assert 2.0 <= float(tube.details["tip_cm"]) <= 7.5


@pytest.mark.slow
def test_pneumothorax_prompts_read_as_the_reports_state_it(studies, tmp_path):
    """With an ideal image side, the built-in pneumothorax prompts score held-out studies well.

    The tiny text tower learns, for 200 steps, to map 300 reports onto fixed embeddings derived from their
    CheXpert labels (what a perfect image tower would give); the prompt ensemble then scores the other 100
    studies' label embeddings. The BioViL-framed set the package had before ("Findings consistent with
    pneumothorax", ...) scored 0.73 here: reports use that frame for pneumonia.
    """
    torch.manual_seed(0)
    reports = [report_text(parse_report(study.report.text)) for study in studies]
    labels = torch.tensor([[study.labels[c] for c in CHEXPERT_LABELS] for study in studies]).nan_to_num(0.0)
    ideal_images = F.normalize(labels.clamp(min=0.0) @ torch.randn(len(CHEXPERT_LABELS), 128), dim=-1)
    model = create_mlip("tiny", text_model=build_tiny_text_model(reports[:300], tmp_path / "text"))
    tokens = [tokenize_sentences(split_sentences(text), model.tokenizer, 128) for text in reports]
    input_ids = torch.stack([t["input_ids"] for t in tokens])
    attention_mask = torch.stack([t["attention_mask"] for t in tokens])
    optimizer = torch.optim.AdamW([*model.text.parameters(), *model.text_projection.parameters()], lr=5e-4)
    for _ in range(200):
        batch = torch.randperm(300)[:32]
        texts = model.encode_text(input_ids[batch], attention_mask[batch])
        loss = global_contrastive_loss(ideal_images[batch], texts, model.logit_scale.exp())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    truth = labels[300:, CHEXPERT_LABELS.index("Pneumothorax")]
    known = truth >= 0
    assert int(truth[known].sum()) >= 10
    scores = ZeroShotClassifier(model, ["Pneumothorax"]).scores(ideal_images[300:])[:, 0]
    assert float(compute_roc_auc(scores[known], truth[known])) > 0.85
