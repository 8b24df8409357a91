"""Versioned prompt templates. The version is part of every judgment's key: change a prompt,
change its version, and the store asks the teacher again instead of mixing answers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from leafiqa.teachers.protocol import FIVE_LEVELS


@dataclass(frozen=True)
class PromptSet:
    version: str
    point: str
    pair: str
    levels: tuple[str, ...] = FIVE_LEVELS
    pair_answers: tuple[str, str] = ("first", "second")


# Q-Align style: the answer's first token is a level word, whose probabilities we read.
DEFAULT_PROMPTS = PromptSet(
    version="qalign-v1",
    point=(
        "How would you rate the quality of this image? "
        "Answer with exactly one word: excellent, good, fair, poor, or bad."
    ),
    pair=(
        "You are shown two images. Which image has better visual quality (sharpness, noise, "
        "artefacts, exposure)? Answer with exactly one word: first or second."
    ),
)


def _clean(token: str) -> str:
    return re.sub(r"[^a-z0-9]", "", token.strip().lower())


def match_word(token: str, words: Sequence[str]) -> str | None:
    """The answer word a token stands for: exact (any case, with or without a leading space or
    the Ġ/▁ markers of BPE/SentencePiece vocabularies), or the unique word it begins (≥ 2
    characters) when a word is split into several tokens."""
    cleaned = _clean(token.replace("Ġ", " ").replace("▁", " "))
    if not cleaned:
        return None
    if cleaned in words:
        return cleaned
    if len(cleaned) >= 2:
        candidates = [w for w in words if w.startswith(cleaned)]
        if len(candidates) == 1:
            return candidates[0]
    return None
