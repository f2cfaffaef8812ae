"""A small, randomly initialised BERT with a WordPiece vocabulary learnt from a report corpus.

The ``tiny`` preset has no pretrained text model to download, so one is made locally: a WordPiece
vocabulary is counted from the reports with the ``tokenizers`` BERT normaliser and pre-tokeniser, wrapped
as a ``BertTokenizer`` (the ``tokenizers``-backed fast tokenizer of transformers) and saved with
``save_pretrained`` next to a random-init ``BertModel``. The directory then loads with ``AutoTokenizer`` /
``AutoModel`` like any hub model, so the tiny and the paper presets share one loading path.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["build_tiny_text_model"]

_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_text_model(
    corpus: Iterable[str],
    out_dir: str | os.PathLike,
    vocab_size: int = 4096,
    min_frequency: int = 2,
    hidden_size: int = 128,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int = 512,
    max_length: int = 128,
    dropout: float = 0.1,
    lowercase: bool = True,
    seed: int = 0,
) -> Path:
    """Train a WordPiece tokenizer on ``corpus`` and write it with a random-init BERT to ``out_dir``.

    Args:
        corpus: report texts (any iterable of strings; read once).
        out_dir: directory to write (created); it receives ``tokenizer.json``, ``tokenizer_config.json``,
            ``config.json`` and ``model.safetensors``.
        vocab_size: largest vocabulary (a small corpus yields fewer entries).
        min_frequency: rarest word count kept as a whole-word entry.
        hidden_size: BERT width.
        num_layers: BERT layers.
        num_heads: attention heads (must divide ``hidden_size``).
        intermediate_size: feed-forward width.
        max_length: position embeddings, and the tokenizer's ``model_max_length``.
        dropout: hidden and attention dropout of the BERT.
        lowercase: lower-case and strip accents (an uncased BERT) or keep the case.
        seed: seed of the weight initialisation (the global random state is left untouched).

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`, ready for ``create_mlip("tiny", text_model=out_dir)``.
    """
    from transformers import BertConfig, BertModel, BertTokenizer

    vocab = _wordpiece_vocab(corpus, vocab_size, min_frequency, lowercase)
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=lowercase, model_max_length=max_length
    )
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_length,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def _wordpiece_vocab(corpus: Iterable[str], vocab_size: int, min_frequency: int, lowercase: bool) -> list[str]:
    """Special tokens, every character (word-initial and ``##`` continuation), then the most frequent words.

    Hand-written because the ``tokenizers`` WordPiece trainer breaks ties between equally frequent merges in
    hash-map order, which changes from run to run: the same reports gave different vocabularies, hence
    different token ids and a run that could not be reproduced. Counting whole words with the same BERT
    normaliser and pre-tokeniser the tokenizer applies, and ordering by (count, word), is deterministic;
    words left out still tokenise, into characters.
    """
    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    normalizer = BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    pre_tokenizer = BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in corpus:
        counts.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    characters = sorted({character for word in counts for character in word})
    alphabet = characters + [f"##{character}" for character in characters]
    frequent = sorted(
        (word for word, n in counts.items() if n >= min_frequency and len(word) > 1), key=lambda w: (-counts[w], w)
    )
    room = max(vocab_size - len(_SPECIAL_TOKENS) - len(alphabet), 0)
    return _SPECIAL_TOKENS + alphabet + frequent[:room]
