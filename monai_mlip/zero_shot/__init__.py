"""Zero-shot classification: the prompt-ensemble classifier (global and OT local scores) and its prompts
(open_clip's ``zero_shot_classifier`` / ``zero_shot_metadata`` split)."""

from monai_mlip.zero_shot.classifier import (
    SCORES,
    PromptSentences,
    ZeroShotClassifier,
    prompt_local_logits,
    tokenize_texts,
)
from monai_mlip.zero_shot.prompts import PROMPTS, PromptSet, prompts_for

__all__ = [
    "PROMPTS",
    "SCORES",
    "PromptSentences",
    "PromptSet",
    "ZeroShotClassifier",
    "prompt_local_logits",
    "prompts_for",
    "tokenize_texts",
]
