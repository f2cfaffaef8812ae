"""Radiology reports: section parsing, cleaning, sentence splitting and tokenisation.

MIMIC-CXR reports are free text with a centred ``FINAL REPORT`` line and sections that start on a new
line with one space and an upper-case header ending in a colon (`` FINDINGS:``); addenda may come
first and protected health information is replaced by ``___``. The Indiana University (Open-I)
reports use ``XXXX`` instead. :func:`parse_report` finds the sections, :func:`clean_text` removes
placeholders, wrapped lines and list numbering, :func:`split_sentences` cuts a text into sentences
without breaking decimals, abbreviations or numbered list items, and :class:`TokenizeReportd` turns a
report into ``input_ids``, ``attention_mask`` and ``sentence_index`` with any Hugging Face tokenizer.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from monai_mlip.errors import ReportError

__all__ = [
    "GroundingSentencesd",
    "TokenizeReportd",
    "clean_text",
    "grounding_sentences",
    "parse_report",
    "read_report",
    "read_report_sections",
    "report_text",
    "resolve_tokenizer",
    "split_sentences",
    "tokenize_sentences",
]

# The header regex of the MIMIC-CXR report tools: a header starts a line with one space.
_HEADER = re.compile(r"\n ([A-Z ()/,-]+):\s", re.DOTALL)
_FINAL_REPORT = re.compile(r"^\s*FINAL REPORT\s*$", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")

# Canonical section names; misspellings are matched to these by edit similarity.
_CANONICAL = (
    "findings",
    "impression",
    "indication",
    "history",
    "comparison",
    "technique",
    "examination",
    "recommendations",
    "notification",
    "addendum",
    "wet read",
)
# Header variants that are not misspellings of their canonical name.
_SYNONYMS = {
    "findings and impression": "impression",
    "findings/impression": "impression",
    "impression and findings": "impression",
    "conclusion": "impression",
    "conclusions": "impression",
    "summary": "impression",
    "finding": "findings",
    "chest, two views": "findings",
    "clinical history": "history",
    "patient history": "history",
    "clinical information": "history",
    "reason for examination": "indication",
    "reason for exam": "indication",
    "clinical indication": "indication",
    "exam": "examination",
    "type of examination": "examination",
    "comparisons": "comparison",
    "comparison exam": "comparison",
    "comparison film": "comparison",
    "reference exam": "comparison",
    "recommendation": "recommendations",
    "recommendation(s)": "recommendations",
    "wetread": "wet read",
}
# Sections that never describe the image; the last-paragraph fallback must not return them.
_NON_FINDING_SECTIONS = frozenset({"indication", "history", "comparison", "technique", "examination", "wet read"})

_PLACEHOLDER = re.compile(r"_{2,}|X{4,}|\bX{2,3}\b")  # IU writes XXXX, also inside words (RADXXXX)
# A numbered list marker at the start of a line: "1.", "2)", "(3)".
_LINE_MARKER = re.compile(r"(?m)^[ \t]*\(?\d{1,2}[.)][ \t]+")
# A candidate list marker inside a line, before a word: " 2. Stable", "(3) Tube".
_INLINE_MARKER = re.compile(r"(?<![\w.,])\(?(\d{1,2})[.)]\s+(?=[A-Za-z(\d])")
_TERMINATOR = re.compile(r"[.!?]+(?=\s|$)")
# Words that end with a full stop inside a sentence; "a.m." and "p.m." follow times ("at 10:25 a.m. on ___").
_ABBREVIATIONS = frozenset(
    {
        "dr",
        "mr",
        "mrs",
        "ms",
        "st",
        "vs",
        "approx",
        "e.g",
        "i.e",
        "eg",
        "ie",
        "cf",
        "fig",
        "a.m",
        "p.m",
        "jr",
        "sr",
        "prof",
    }
)


def _canonical_section(name: str) -> str:
    name = re.sub(r"\s+", " ", name.strip().lower())
    if name in _CANONICAL:
        return name
    if name in _SYNONYMS:
        return _SYNONYMS[name]
    close = difflib.get_close_matches(name, _CANONICAL + tuple(_SYNONYMS), n=1, cutoff=0.8)
    if close:
        return _SYNONYMS.get(close[0], close[0])
    return name


def parse_report(text: str) -> dict[str, str]:
    """Split a MIMIC-style report into sections.

    Args:
        text: the whole report file as text.

    Returns:
        Lower-case canonical section name (``findings``, ``impression``, ``indication``, ``comparison``,
        ``technique``, ``examination``, ``history``, ``addendum``, ...) to the section's text with wrapped
        lines kept (each stripped); repeated sections are concatenated. Text before the first header is ``preamble``.
        Misspelled headers (``IMPRESION``, ``FINDNGS``) map to their canonical names. When the report has
        neither findings nor impression, the last paragraph goes under ``last_paragraph`` unless it is
        itself an indication, history, comparison, technique or examination section.

    Raises:
        ReportError: the text is empty or blank.
    """
    if not isinstance(text, str) or not text.strip():
        raise ReportError("<report>", "the report is empty")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    final = _FINAL_REPORT.search(text)
    sections: dict[str, str] = {}

    def add(name: str, body: str) -> None:
        body = "\n".join(line.strip() for line in body.strip().split("\n"))
        if body:
            sections[name] = f"{sections[name]}\n{body}" if name in sections else body

    if final is not None and final.start() > 0:
        before = text[: final.start()]
        # Addenda (and wet reads) are written above the final report.
        add("addendum" if "ADDENDUM" in before.upper() else "preamble", re.sub(r"(FINAL )?ADDENDUM:?", "", before))
        text = text[final.end() :]
    elif final is not None:
        text = text[final.end() :]
    body = "\n" + text
    matches = list(_HEADER.finditer(body))
    add("preamble", body[: matches[0].start()] if matches else body)
    ends = [m.start() for m in matches[1:]] + [len(body)]
    for match, end in zip(matches, ends, strict=False):  # no headers: no sections
        add(_canonical_section(match.group(1)), body[match.end() : end])
    if "findings" not in sections and "impression" not in sections:
        paragraphs = [p for p in _PARAGRAPH_BREAK.split(body) if p.strip()]
        if paragraphs:
            last = "\n" + paragraphs[-1].lstrip("\n")
            header = _HEADER.match(last)
            name = _canonical_section(header.group(1)) if header else None
            if name not in _NON_FINDING_SECTIONS:
                add("last_paragraph", last[header.end() :] if header else last)
    return sections


def _drop_inline_markers(text: str) -> str:
    """Turn inline list markers into sentence breaks.

    A candidate (``2.`` before a word) is a marker when it follows a terminator or colon, or when it
    continues the numbering of the previous marker ("1. No effusion 2. Stable" has both).
    """
    pieces, last, expected = [], 0, 1
    for match in _INLINE_MARKER.finditer(text):
        preceding = text[: match.start()].rstrip()
        number = int(match.group(1))
        # "zone 1. No" and "fig. 3. Stable" keep their numbers: a marker follows a sentence end (not an
        # abbreviation's full stop) or the text's start, or continues a list already started ("2" after "1")
        after_end = not preceding or (
            preceding[-1] in ".!?:;" and not (preceding[-1] == "." and _is_abbreviation(preceding, len(preceding) - 1))
        )
        if not after_end and not (number == expected and expected > 1):
            continue
        piece = text[last : match.start()].strip()
        if piece and piece[-1] not in ".!?:;":
            piece += "."
        pieces.append(piece)
        last, expected = match.end(), number + 1
    pieces.append(text[last:].strip())
    return " ".join(p for p in pieces if p)


def clean_text(text: str) -> str:
    """Remove PHI placeholders (``___``, ``XXXX``), wrapped lines and list numbering.

    List items become sentences: a line-start marker (``1.``, ``2)``) ends the previous item with a
    full stop when it has none, and the marker is dropped.

    Args:
        text: section text.

    Returns:
        One line of text with single spaces.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _PLACEHOLDER.sub(" ", text)
    lines = [line.strip() for line in text.split("\n")]
    pieces: list[str] = []
    for line in lines:
        if not line:
            continue
        if _LINE_MARKER.match(line) and pieces and not re.search(r"[.!?:;]$", pieces[-1]):
            pieces[-1] += "."
        pieces.append(_LINE_MARKER.sub("", line, count=1))
    text = _drop_inline_markers(" ".join(pieces))
    text = re.sub(r"\(\s*\)", " ", text)  # brackets left empty by a placeholder
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)  # space before punctuation
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)  # repeated separators
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r"^[,.;:]\s*", "", text)


def _is_abbreviation(text: str, end: int) -> bool:
    """Whether the terminator at ``end`` closes an abbreviation or a decimal's integer part."""
    start = end
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    word = text[start:end].lower().lstrip("([\"'")
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha() and word.isupper())


def split_sentences(text: str) -> list[str]:
    """Split text into sentences.

    Decimals (``2.5 cm``), abbreviations (``Dr.``, ``e.g.``, ``approx.``) and numbered list items
    (``1. No effusion. 2. Stable heart size.``) stay intact; list markers are dropped. Sentences without
    a letter or digit are dropped.

    Args:
        text: raw or cleaned section text.

    Returns:
        The sentences, stripped, in order.

    Raises:
        ReportError: ``text`` is not a string (``None`` from a manifest without the report, say).
    """
    if not isinstance(text, str):
        raise ReportError("<report>", f"expected report text (str), got {type(text).__name__}")
    text = clean_text(text)
    sentences: list[str] = []
    start = 0
    for match in _TERMINATOR.finditer(text):
        if _is_abbreviation(text, match.start()):
            continue
        sentences.append(text[start : match.end()])
        start = match.end()
    sentences.append(text[start:])
    return [s.strip() for s in sentences if re.search(r"[A-Za-z0-9]", s)]


def report_text(
    sections: Mapping[str, str],
    use: Sequence[str] = ("impression", "findings"),
    fallback: str | None = "last_paragraph",
    item: object = "<report>",
) -> str:
    """The cleaned text of the chosen sections of a parsed report, joined in the given order.

    Args:
        sections: the output of :func:`parse_report`.
        use: section names to take, in order (MGCA and MaCo use impression then findings).
        fallback: section used when none of ``use`` is present (``None``: no fallback).
        item: what to name in errors (the report's path).

    Raises:
        ReportError: none of the sections (nor the fallback) holds text.
    """
    parts = [clean_text(sections[name]) for name in use if name in sections]
    if not any(parts) and fallback is not None and fallback in sections:
        parts = [clean_text(sections[fallback])]
    text = " ".join(p for p in parts if p)
    if not text:
        present = ", ".join(sorted(sections)) or "none"
        raise ReportError(item, f"no {' or '.join(use)} text (sections found: {present})")
    if not split_sentences(text):
        raise ReportError(item, f"no sentence with a letter or digit in the report text {text[:40]!r}")
    return text


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


def grounding_sentences(sentences: Sequence[str], phrase: str) -> list[str]:
    """The phrase first, then the report's other sentences (dropping those that are or contain the phrase).

    With the phrase as sentence 0, its column of the patch-sentence OT plan is its grounding heatmap while
    the report's other sentences compete for the patches.
    """
    key = _words(phrase)
    return [phrase, *(s for s in sentences if key not in _words(s) and _words(s) not in key)]


def read_report_sections(path: str | os.PathLike) -> dict[str, str]:
    """Read a report file (UTF-8) and split it into sections (:func:`parse_report`).

    Raises:
        ReportError: the file is missing, not UTF-8, empty or binary.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise ReportError(path, "report file not found") from err
    except OSError as err:
        raise ReportError(path, f"cannot read report ({err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ReportError(path, f"not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r})") from err
    if not text.strip():
        raise ReportError(path, "the report is empty")
    if "\x00" in text:
        raise ReportError(path, f"binary data, not a text report (NUL byte at offset {text.index(chr(0))})")
    return parse_report(text)


def read_report(
    path: str | os.PathLike, use: Sequence[str] = ("impression", "findings"), fallback: str | None = "last_paragraph"
) -> str:
    """Read a report file (UTF-8) and return the cleaned text of the chosen sections.

    Raises:
        ReportError: the file is missing, not UTF-8, empty, or has no usable section.
    """
    return report_text(read_report_sections(path), use=use, fallback=fallback, item=path)


def tokenize_sentences(
    sentences: Sequence[str], tokenizer: Any, max_length: int, max_sentences: int | None = None
) -> dict[str, torch.Tensor]:
    """Tokenise sentences into one padded sequence with the sentence number of every token.

    Whole trailing sentences are dropped first when the sequence is too long; only a first sentence
    that alone exceeds the budget is cut inside. Sentences past ``max_sentences`` stay in the sequence
    (they shape the global report embedding) with sentence number ``-1``: they get no sentence slot, so
    they take no part in the patch-sentence matching.

    Args:
        sentences: the report's sentences, in order.
        tokenizer: a Hugging Face tokenizer (fast or slow).
        max_length: length ``L`` of the output, special tokens included.
        max_sentences: sentences numbered from 0 to ``max_sentences - 1`` (``None``: all of them).

    Returns:
        ``input_ids`` and ``attention_mask`` (``[L]`` long), and ``sentence_index`` (``[L]`` long: the
        sentence number of each token, ``-1`` for special and padding tokens and for the tokens of
        sentences past ``max_sentences``).
    """
    pieces = tokenizer(list(sentences), add_special_tokens=False)["input_ids"] if sentences else []
    pieces = [p for p in pieces if p]
    slots = len(pieces) if max_sentences is None else max_sentences
    start = [t for t in (tokenizer.cls_token_id, tokenizer.bos_token_id) if t is not None][:1]
    end = [t for t in (tokenizer.sep_token_id, tokenizer.eos_token_id) if t is not None][:1]
    budget = max_length - len(start) - len(end)
    if budget <= 0:
        raise ValueError(f"max_length {max_length} leaves no room between the special tokens")
    ids, index = list(start), [-1] * len(start)
    for number, piece in enumerate(pieces):
        room = budget - (len(ids) - len(start))
        if len(piece) > room:
            if number == 0:
                ids += piece[:room]
                index += [0] * room
            break
        ids += piece
        index += [number if number < slots else -1] * len(piece)
    ids += end
    index += [-1] * len(end)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    padding = max_length - len(ids)
    return {
        "input_ids": torch.tensor(ids + [pad] * padding, dtype=torch.long),
        "attention_mask": torch.tensor([1] * len(ids) + [0] * padding, dtype=torch.long),
        "sentence_index": torch.tensor(index + [-1] * padding, dtype=torch.long),
    }


def resolve_tokenizer(tokenizer: Any) -> Any:
    """A Hugging Face tokenizer, loaded when given as a local path or cached hub name
    (:func:`~monai_mlip.hub.load_tokenizer`), else returned as it is."""
    if isinstance(tokenizer, (str, os.PathLike)):
        from monai_mlip.hub import load_tokenizer

        return load_tokenizer(tokenizer)
    return tokenizer


class TokenizeReportd(MapTransform):
    """Turn report text into ``input_ids``, ``attention_mask`` and ``sentence_index``.

    The text is split with :func:`split_sentences` and tokenised with :func:`tokenize_sentences`; a list
    of strings is taken as sentences already split.

    Args:
        keys: the key holding the report text or its sentences (one key).
        tokenizer: a Hugging Face tokenizer, or a local path / cached hub name to load one from.
        max_length: output length ``L`` (128 in MLIP).
        max_sentences: sentence slots; later sentences stay in the text with sentence number ``-1``
            (:func:`tokenize_sentences`).
        prefix: prepended to the output key names (for several texts per item).
        allow_missing_keys: skip items without the key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        tokenizer: Any,
        max_length: int = 128,
        max_sentences: int | None = None,
        prefix: str = "",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"TokenizeReportd takes one text key, got {self.keys}")
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.max_length = max_length
        self.max_sentences = max_sentences
        self.prefix = prefix

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            text = d[key]
            sentences = split_sentences(text) if isinstance(text, str) else list(text)
            tokens = tokenize_sentences(sentences, self.tokenizer, self.max_length, self.max_sentences)
            d.update({f"{self.prefix}{name}": value for name, value in tokens.items()})
        return d


class GroundingSentencesd(MapTransform):
    """Put a phrase first among its report's sentences (:func:`grounding_sentences`), for grounding.

    Args:
        keys: the key of the report text.
        phrase_key: the key of the phrase.
        output_key: where the list of sentences goes (tokenise it with :class:`TokenizeReportd`).
        allow_missing_keys: skip items without the key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        phrase_key: str = "phrase",
        output_key: str = "sentences",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.phrase_key = phrase_key
        self.output_key = output_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.output_key] = grounding_sentences(split_sentences(d[key]), d[self.phrase_key])
        return d
