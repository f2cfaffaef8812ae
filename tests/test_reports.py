"""Report parsing, cleaning, sentence splitting and tokenisation, on crafted and on 3,955 real reports."""

from __future__ import annotations

import re
import tarfile
import xml.etree.ElementTree as ET

import pytest
import torch

from monai_mlip.data import TokenizeReportd, clean_text, parse_report, read_report, report_text, split_sentences
from monai_mlip.data.reports import tokenize_sentences
from monai_mlip.errors import ReportError
from tests.conftest import xrv_data_file

# MIMIC writes blank lines as a single space and leaves a space after section headers.
MIMIC_REPORT = "\n".join(
    [
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___F with new onset ascites  // eval for infection",
        " ",
        " COMPARISON:  ___",
        " ",
        " FINDINGS: ",
        " ",
        " There is no focal consolidation, pleural effusion or pneumothorax.  Bilateral",
        " nodular opacities measuring 2.5 cm most likely represent nipple shadows. The",
        " cardiomediastinal silhouette is normal, e.g. stable.  Findings were discussed",
        " with Dr. ___ at 10:25 a.m. on ___.",
        " ",
        " IMPRESION: ",
        " ",
        " 1. No acute cardiopulmonary process",
        " 2. Stable cardiomegaly.",
        "",
    ]
)


def test_parse_mimic_sections_and_misspelled_header():
    sections = parse_report(MIMIC_REPORT)
    assert set(sections) >= {"examination", "indication", "comparison", "findings", "impression"}
    assert sections["examination"] == "CHEST (PA AND LAT)"
    assert sections["findings"].startswith("There is no focal consolidation")
    assert sections["impression"].splitlines() == ["1. No acute cardiopulmonary process", "2. Stable cardiomegaly."]


def test_addendum_before_final_report():
    text = (
        " ADDENDUM: Called Dr. ___ with the result.\n\n     FINAL REPORT\n"
        " FINDINGS: Clear lungs.\n IMPRESSION: None acute."
    )
    sections = parse_report(text)
    assert sections["addendum"] == "Called Dr. ___ with the result."
    assert sections["findings"] == "Clear lungs." and sections["impression"] == "None acute."


def test_last_paragraph_fallback_and_its_limit():
    assert parse_report("Heart size normal.\n\nLungs are clear. No effusion.")["last_paragraph"] == (
        "Lungs are clear. No effusion."
    )
    only_history = parse_report(" INDICATION: Cough.\n\n COMPARISON: None.")
    assert "last_paragraph" not in only_history
    with pytest.raises(ReportError, match="no impression or findings"):
        report_text(only_history, item="s5.txt")


def test_clean_text_placeholders_wrapping_and_numbering():
    assert clean_text("Compared to ___ , the\n  effusion is\nsmaller.") == "Compared to, the effusion is smaller."
    assert clean_text("Normal chest XXXX. No XXXX of effusion.") == "Normal chest. No of effusion."
    assert clean_text("1. No acute process\n2. Stable cardiomegaly.") == "No acute process. Stable cardiomegaly."


def test_split_sentences_keeps_decimals_abbreviations_and_list_items():
    text = report_text(parse_report(MIMIC_REPORT))
    assert split_sentences(text) == [
        "No acute cardiopulmonary process.",
        "Stable cardiomegaly.",
        "There is no focal consolidation, pleural effusion or pneumothorax.",
        "Bilateral nodular opacities measuring 2.5 cm most likely represent nipple shadows.",
        "The cardiomediastinal silhouette is normal, e.g. stable.",
        "Findings were discussed with Dr. at 10:25 a.m. on.",
    ]
    assert split_sentences("1. Small effusion. 2. Tube in place 3. No pneumothorax.") == [
        "Small effusion.",
        "Tube in place.",
        "No pneumothorax.",
    ]
    assert split_sentences("Left rib 5. Old fracture.") == ["Left rib 5.", "Old fracture."]
    assert split_sentences("   ") == []


@pytest.mark.parametrize("text", ["", "   \n  \n"])
def test_empty_or_blank_report(text):
    with pytest.raises(ReportError, match="empty"):
        parse_report(text)


def test_report_files_errors_name_the_file(tmp_path):
    (tmp_path / "blank.txt").write_text("   \n")
    (tmp_path / "latin1.txt").write_bytes(" FINDINGS: Caf\xe9 opacity.".encode("latin-1"))
    (tmp_path / "history.txt").write_text(" INDICATION: Fever.\n")
    for name, reason in [
        ("missing.txt", "not found"),
        ("blank.txt", "empty"),
        ("latin1.txt", "not UTF-8"),
        ("history.txt", "no impression or findings"),
    ]:
        with pytest.raises(ReportError, match=reason) as info:
            read_report(tmp_path / name)
        assert name in str(info.value)


def test_tokenize_sentences_indexes_and_truncates_whole_sentences(tiny_tokenizer):
    sentences = ["No pneumothorax.", "Small left pleural effusion.", "The heart size is normal."]
    pieces = [tiny_tokenizer(s, add_special_tokens=False)["input_ids"] for s in sentences]
    full = tokenize_sentences(sentences, tiny_tokenizer, max_length=64)
    ids, index, attention = full["input_ids"], full["sentence_index"], full["attention_mask"]
    assert ids.shape == index.shape == attention.shape == (64,) and ids.dtype == torch.long
    assert ids[0] == tiny_tokenizer.cls_token_id and index[0] == -1
    for number, piece in enumerate(pieces):
        assert ids[index == number].tolist() == piece
    n_real = sum(map(len, pieces)) + 2
    assert attention.sum() == n_real and (index[n_real:] == -1).all() and ids[n_real - 1] == tiny_tokenizer.sep_token_id

    # room for the first two sentences only: the third is dropped whole, not cut
    budget = len(pieces[0]) + len(pieces[1]) + 2 + len(pieces[2]) - 1
    short = tokenize_sentences(sentences, tiny_tokenizer, max_length=budget)
    assert short["sentence_index"].max() == 1
    assert short["attention_mask"].sum() == len(pieces[0]) + len(pieces[1]) + 2
    # a first sentence longer than the budget is cut inside
    tiny = tokenize_sentences(sentences, tiny_tokenizer, max_length=4)
    assert tiny["sentence_index"].tolist() == [-1, 0, 0, -1]
    assert tokenize_sentences(sentences, tiny_tokenizer, 64, max_sentences=1)["sentence_index"].max() == 0


def test_tokenize_report_transform(tiny_tokenizer):
    out = TokenizeReportd("report", tiny_tokenizer, max_length=32)({"report": MIMIC_REPORT.split("IMPRESION:")[1]})
    assert {"input_ids", "attention_mask", "sentence_index"} <= set(out)
    assert out["sentence_index"].max() == 1  # two list items, two sentences


def _iu_reports() -> list[dict[str, str]]:
    reports = []
    with tarfile.open(xrv_data_file("NLMCXR_reports.tgz")) as archive:
        for member in archive.getmembers():
            if not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(archive.extractfile(member).read())
            sections = {node.get("Label", "").upper(): (node.text or "") for node in root.iter("AbstractText")}
            reports.append({"name": member.name, **sections})
    return reports


def test_every_indiana_university_report():
    reports = _iu_reports()
    assert len(reports) == 3955
    with_text = 0
    for iu in reports:
        # MIMIC-style text from the IU sections: a FINAL REPORT line and one-space headers
        text = "                FINAL REPORT\n" + "".join(
            f" {label}: {iu.get(label, '')}\n" for label in ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")
        )
        sections = parse_report(text)
        has_text = any(iu.get(label, "").strip() for label in ("FINDINGS", "IMPRESSION"))
        if not has_text:
            with pytest.raises(ReportError):
                report_text(sections, fallback=None, item=iu["name"])
            continue
        with_text += 1
        sentences = split_sentences(report_text(sections, item=iu["name"]))
        assert sentences, iu["name"]
        assert all("XXXX" not in s and "\n" not in s for s in sentences), iu["name"]
        # no sentence is a bare list number ("2."), the orphan a lost marker leaves
        assert not any(re.fullmatch(r"\(?\d{1,2}[.)]", s) for s in sentences), (iu["name"], sentences)
    assert with_text > 3500


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Catheter tip in zone 1. No pneumothorax.", ["Catheter tip in zone 1.", "No pneumothorax."]),
        ("Grade 1. No effusion.", ["Grade 1.", "No effusion."]),
        ("See fig. 3. Stable heart size.", ["See fig. 3.", "Stable heart size."]),
        ("1. No effusion. 2. 8 mm nodule.", ["No effusion.", "8 mm nodule."]),
        ("Clear lungs. 2. No effusion. 3) Tube in place.", ["Clear lungs.", "No effusion.", "Tube in place."]),
    ],
)
def test_numbers_are_neither_dropped_nor_orphaned(text, expected):
    assert split_sentences(text) == expected


def test_reports_of_binary_or_no_words_are_refused(tmp_path):
    nul = tmp_path / "s1.txt"
    nul.write_bytes(b"\x00" * 64)
    with pytest.raises(ReportError, match=r"s1\.txt: binary data"):
        read_report(nul)
    symbols = tmp_path / "s2.txt"
    symbols.write_text("                FINAL REPORT\n IMPRESSION: ... --- ***\n")
    with pytest.raises(ReportError, match=r"s2\.txt: no sentence"):
        read_report(symbols)


@pytest.mark.parametrize("value", [None, 42, b"No effusion."])
def test_split_sentences_of_no_text_is_a_report_error(value):
    with pytest.raises(ReportError, match="expected report text"):
        split_sentences(value)
