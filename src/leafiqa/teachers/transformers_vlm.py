"""A local MLLM teacher through Hugging Face transformers (InternVL, Qwen2.5-VL / Qwen3-VL,
LLaVA, or any image-text-to-text model with a chat template).

One forward pass per batch, no sampling: the next-token distribution after the prompt is read
at the level words' first tokens (every casing/spacing variant the tokenizer has), giving the
five-level distribution directly. Pair-wise, the same on "first"/"second" with both images in
the prompt, asked in both orders. Needs ``pip install leaf-iqa[transformers]``; uses CUDA (bf16)
or Apple MPS when present, else the CPU."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from leafiqa.data.images import open_rgb
from leafiqa.data.manifest import ImageItem
from leafiqa.errors import ConfigError
from leafiqa.teachers.prompts import DEFAULT_PROMPTS, PromptSet, match_word
from leafiqa.teachers.protocol import (
    JudgmentFailure,
    PairJob,
    PairJudgment,
    PointJob,
    PointJudgment,
    Teacher,
    TeacherError,
    make_point_judgment,
    pair_judgment_from_orders,
)


def pick_device(device: str = "auto") -> torch.device:
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def word_token_ids(tokenizer, words: Sequence[str]) -> dict[int, int]:  # noqa: ANN001
    """token id → index of the word it starts, over casing/spacing variants of each word."""
    mapping: dict[int, int] = {}
    for index, word in enumerate(words):
        for variant in (word, " " + word, word.capitalize(), " " + word.capitalize(),
                        word.upper()):
            ids = tokenizer.encode(variant, add_special_tokens=False)
            if not ids:
                continue
            first = tokenizer.convert_ids_to_tokens(ids[0])
            if match_word(str(first), words) == word:
                mapping.setdefault(int(ids[0]), index)
    missing = [w for i, w in enumerate(words) if i not in mapping.values()]
    if missing:
        raise TeacherError(f"the tokenizer has no token starting the word(s) {missing}")
    return mapping


class TransformersTeacher(Teacher):
    supports_pairs = True

    def __init__(self, model: str, device: str = "auto", batch_size: int = 8,
                 prompts: PromptSet = DEFAULT_PROMPTS, trust_remote_code: bool = False,
                 **_: object) -> None:
        try:
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError:
            raise ImportError("the transformers teacher needs `pip install "
                              "leaf-iqa[transformers]`") from None
        if not model:
            raise ConfigError("transformers teacher: give a model id or path "
                              "(transformers:MODEL or LEAF_TEACHER_MODEL)")
        self.device = pick_device(device)
        dtype = torch.bfloat16 if self.device.type == "cuda" and torch.cuda.is_bf16_supported() \
            else torch.float32
        self.processor = AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.tokenizer.padding_side = "left"  # so the last position is every row's next token
        loaded: Any = AutoModelForImageTextToText.from_pretrained(
            model, dtype=dtype, trust_remote_code=trust_remote_code)
        self.model = loaded.to(self.device).eval()
        self.batch_size = batch_size
        self.prompts = prompts
        self.teacher_id = f"transformers:{model.rstrip('/').split('/')[-1]}"
        self.prompt_version = prompts.version
        self.levels = prompts.levels
        self.level_ids = word_token_ids(self.tokenizer, self.levels)
        self.pair_ids = word_token_ids(self.tokenizer, prompts.pair_answers)

    def _prompt(self, n_images: int, text: str) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": text}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}],
                                                  add_generation_prompt=True)

    @torch.inference_mode()
    def word_distributions(self, image_groups: Sequence[Sequence[Image.Image]], text: str,
                           word_ids: dict[int, int], n_words: int) -> np.ndarray:
        """(len(groups), n_words): P(answer word) from the next-token distribution."""
        prompts = [self._prompt(len(group), text) for group in image_groups]
        images = [image for group in image_groups for image in group]
        inputs = self.processor(text=prompts, images=images, return_tensors="pt", padding=True)
        inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        logits = self.model(**inputs).logits[:, -1, :].float()
        probs = torch.softmax(logits, dim=-1).cpu().numpy()
        out = np.zeros((len(image_groups), n_words))
        for token_id, word in word_ids.items():
            out[:, word] += probs[:, token_id]
        return out / out.sum(axis=1, keepdims=True)

    def level_probs(self, item: ImageItem) -> tuple[Sequence[float], str]:
        row = self.word_distributions([[open_rgb(item.path)]], self.prompts.point,
                                      self.level_ids, len(self.levels))[0]
        return row.tolist(), "logits"

    def first_better_prob(self, first: ImageItem, second: ImageItem) -> tuple[float, str]:
        row = self.word_distributions([[open_rgb(first.path), open_rgb(second.path)]],
                                      self.prompts.pair, self.pair_ids, 2)[0]
        return float(row[0]), "logits"

    def judge_points(self, jobs: Sequence[PointJob]) -> Iterator[PointJudgment | JudgmentFailure]:
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start : start + self.batch_size]
            try:
                images = [[open_rgb(job.item.path)] for job in batch]
                rows = self.word_distributions(images, self.prompts.point, self.level_ids,
                                               len(self.levels))
            except Exception as error:  # one bad batch: judge its images one by one
                if len(batch) == 1:
                    yield JudgmentFailure("point", (batch[0].key,), self.teacher_id,
                                          self.prompt_version, f"{batch[0].item.path}: {error}")
                    continue
                for job in batch:
                    yield from self.judge_points([job])
                continue
            for job, row in zip(batch, rows, strict=True):
                yield make_point_judgment(image_key=job.key, teacher_id=self.teacher_id,
                                          prompt_version=self.prompt_version, levels=self.levels,
                                          probs=row, method="logits", image_name=job.item.name)

    def judge_pairs(self, jobs: Sequence[PairJob]) -> Iterator[PairJudgment | JudgmentFailure]:
        for start in range(0, len(jobs), max(1, self.batch_size // 2)):
            batch = jobs[start : start + max(1, self.batch_size // 2)]
            try:
                groups = []
                for job in batch:
                    a, b = open_rgb(job.a.path), open_rgb(job.b.path)
                    groups += [[a, b], [b, a]]
                rows = self.word_distributions(groups, self.prompts.pair, self.pair_ids, 2)
            except Exception as error:
                for job in batch:
                    yield JudgmentFailure("pair", (job.key_a, job.key_b), self.teacher_id,
                                          self.prompt_version, f"{job.a.name} vs {job.b.name}: "
                                                               f"{error}")
                continue
            for index, job in enumerate(batch):
                yield pair_judgment_from_orders(self, job, float(rows[2 * index, 0]),
                                                float(rows[2 * index + 1, 0]), "logits", "logits")

    def close(self) -> None:
        del self.model
