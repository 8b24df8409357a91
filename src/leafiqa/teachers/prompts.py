"""Versioned prompt templates. The version is part of every judgment's key: change a prompt,
change its version, and the store asks the teacher again instead of mixing answers."""

from __future__ import annotations

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
