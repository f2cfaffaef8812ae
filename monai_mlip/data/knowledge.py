"""A chest X-ray knowledge file and the tagging of the concepts a report names.

The knowledge-guided recipe (``mlip_kg``) aligns report tokens that name a medical concept with image
patches through the concept's knowledge embedding, and contrasts images at the level of the concepts
their reports assert; the entity-driven masked language modelling of ``mmclip`` masks the same tokens.
Both need what this module gives: a small knowledge base (:func:`load_knowledge`; the packaged
``cxr_knowledge.json`` covers the 14 CheXpert observations with synonyms, a definition, anatomical
locations and an expert category: UMLS, which the paper uses, is not available offline) and, for a
tokenised report, the concept of every token and the concepts the report asserts (:class:`TagConceptsd`).

Mentions are found by whole-word, case-insensitive matching of a concept's name and synonyms, longest
first, without overlaps. A mention is negated when a negation cue of the knowledge file (``no``,
``without``, ...) comes before it in its sentence (NegEx's rule, reduced to the preceding words of the
sentence); hedged mentions (``may represent``) count as asserted, CheXpert's "U-ones" policy. A report that
asserts "No Finding" (when the knowledge file has that concept) exactly when it asserts no other concept.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from monai_mlip.data.reports import resolve_tokenizer, split_sentences
from monai_mlip.errors import KnowledgeFileError

__all__ = ["DEFAULT_KNOWLEDGE", "Concept", "Knowledge", "Mention", "TagConceptsd", "load_knowledge", "tag_concepts"]

DEFAULT_KNOWLEDGE = Path(__file__).with_name("cxr_knowledge.json")
NO_FINDING = "No Finding"


@dataclass(frozen=True)
class Concept:
    """One medical concept: its ``name``, the ``synonyms`` reports use, a one-line ``definition``, the
    anatomical ``locations`` where it is seen and its expert ``category``."""

    name: str
    synonyms: tuple[str, ...]
    definition: str
    locations: tuple[str, ...]
    category: str

    def description(self) -> str:
        """The text the knowledge encoder reads for this concept."""
        return (
            f"{self.name}: {self.definition} Seen at the {', '.join(self.locations)}. "
            f"Also called {', '.join(self.synonyms)}."
        )


@dataclass(frozen=True)
class Mention:
    """A concept named in a sentence: ``concept`` index, character ``start`` and ``end``, and ``negated``."""

    concept: int
    start: int
    end: int
    negated: bool


@dataclass(frozen=True)
class Knowledge:
    """The concepts, their categories (name -> description) and the negation cues."""

    concepts: tuple[Concept, ...]
    categories: Mapping[str, str]
    negation_cues: tuple[str, ...]

    @property
    def names(self) -> list[str]:
        """Concept names, in index order."""
        return [concept.name for concept in self.concepts]

    @property
    def category_names(self) -> list[str]:
        """Category names, in index order."""
        return list(self.categories)

    def category_of(self) -> list[int]:
        """``[C]`` the category index of each concept."""
        order = self.category_names
        return [order.index(concept.category) for concept in self.concepts]

    @cached_property
    def _term_concept(self) -> dict[str, int]:
        """Lower-case term -> concept index (a term two concepts share goes to the first)."""
        terms: dict[str, int] = {}
        for index, concept in enumerate(self.concepts):
            for term in (concept.name, *concept.synonyms):
                terms.setdefault(term.lower(), index)
        return terms

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        longest_first = sorted(self._term_concept, key=len, reverse=True)
        return re.compile(r"\b(" + "|".join(re.escape(term) for term in longest_first) + r")\b", re.IGNORECASE)

    @cached_property
    def _cue(self) -> re.Pattern[str]:
        return re.compile(r"\b(" + "|".join(re.escape(cue) for cue in self.negation_cues) + r")\b", re.IGNORECASE)

    def mentions(self, sentence: str) -> list[Mention]:
        """The concepts ``sentence`` names, in order, with their negation."""
        found = []
        for match in self._pattern.finditer(sentence):
            concept = self._term_concept[match.group(1).lower()]
            negated = self._cue.search(sentence, 0, match.start()) is not None
            found.append(Mention(concept, match.start(), match.end(), negated))
        return found

    def asserted(self, sentences: Sequence[str]) -> list[int]:
        """``[C]`` 1 for each concept the sentences name without negation, else 0 (No Finding when none)."""
        labels = [0] * len(self.concepts)
        for sentence in sentences:
            for mention in self.mentions(sentence):
                labels[mention.concept] = labels[mention.concept] or int(not mention.negated)
        if NO_FINDING in self.names:  # CheXpert's rule: no finding exactly when nothing else is asserted
            normal = self.names.index(NO_FINDING)
            labels[normal] = int(not any(value for index, value in enumerate(labels) if index != normal))
        return labels


def load_knowledge(path: str | os.PathLike | None = None) -> Knowledge:
    """Read a knowledge file (the packaged CXR one by default).

    Raises:
        KnowledgeFileError: the file is missing, not JSON, or a concept lacks a field or names an unknown category.
    """
    path = Path(path) if path is not None else DEFAULT_KNOWLEDGE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise KnowledgeFileError(path, "knowledge file not found") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise KnowledgeFileError(path, f"cannot read the knowledge file as JSON ({error})") from error
    try:
        categories = dict(record["categories"])
        concepts = tuple(
            Concept(
                name=str(entry["name"]),
                synonyms=tuple(entry["synonyms"]),
                definition=str(entry["definition"]),
                locations=tuple(entry["locations"]),
                category=str(entry["category"]),
            )
            for entry in record["concepts"]
        )
        cues = tuple(record["negation_cues"])
    except (KeyError, TypeError) as error:
        raise KnowledgeFileError(path, f"missing or malformed field {error}") from error
    for concept in concepts:
        if concept.category not in categories:
            raise KnowledgeFileError(path, f"concept {concept.name!r} has unknown category {concept.category!r}")
    if not concepts:
        raise KnowledgeFileError(path, "no concepts")
    return Knowledge(concepts, categories, cues)


def tag_concepts(
    sentences: Sequence[str], tokenizer: Any, sentence_index: torch.Tensor, knowledge: Knowledge
) -> torch.Tensor:
    """The concept of every token of a report tokenised by :func:`~monai_mlip.data.tokenize_sentences`.

    Args:
        sentences: the report's sentences, as tokenised.
        tokenizer: the same (fast) Hugging Face tokenizer, for the character offsets of its tokens.
        sentence_index: ``[L]`` the sentence number of each token (``-1``: none).
        knowledge: the concepts.

    Returns:
        ``[L]`` long: the concept index of each token of a mention, ``-1`` elsewhere (tokens of sentences
        without a sentence slot are not tagged).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("tag_concepts needs a fast (Rust) tokenizer for the tokens' character offsets")
    concept_index = torch.full_like(sentence_index, -1)
    for number, sentence in enumerate(sentences):
        positions = (sentence_index == number).nonzero().flatten()
        if not len(positions):
            continue
        mentions = knowledge.mentions(sentence)
        if not mentions:
            continue
        offsets = tokenizer(sentence, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        for token, (start, end) in zip(positions.tolist(), offsets, strict=False):  # a cut sentence has fewer
            for mention in mentions:
                if start < mention.end and end > mention.start:
                    concept_index[token] = mention.concept
    return concept_index


class TagConceptsd(MapTransform):
    """Add ``concept_index`` ``[L]`` (:func:`tag_concepts`) and ``concept_labels`` ``[C]`` (float 0/1: the
    concepts the report asserts, :meth:`Knowledge.asserted`) to an item tokenised by
    :class:`~monai_mlip.data.TokenizeReportd`.

    Args:
        keys: the key of the report text (one key).
        tokenizer: the tokenizer :class:`~monai_mlip.data.TokenizeReportd` used (or a local path to load it from).
        knowledge: a :class:`Knowledge`, a knowledge file, or ``None`` for the packaged one.
        allow_missing_keys: skip items without the key.
    """

    def __init__(
        self,
        keys: KeysCollection,
        tokenizer: Any,
        knowledge: Knowledge | str | os.PathLike | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if len(self.keys) != 1:
            raise ValueError(f"TagConceptsd takes one text key, got {self.keys}")
        self.tokenizer = resolve_tokenizer(tokenizer)
        self.knowledge = knowledge if isinstance(knowledge, Knowledge) else load_knowledge(knowledge)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            text = d[key]
            sentences = split_sentences(text) if isinstance(text, str) else list(text)
            d["concept_index"] = tag_concepts(sentences, self.tokenizer, d["sentence_index"], self.knowledge)
            d["concept_labels"] = torch.tensor(self.knowledge.asserted(sentences), dtype=torch.float32)
        return d
