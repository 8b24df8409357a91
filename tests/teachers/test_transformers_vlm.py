"""The transformers teacher on a tiny, randomly initialised LLaVA built inside the test (no
download): exercises the real processor → forward → next-token-logits path, batching with left
padding, and both pair orders. The tiny model's judgments are meaningless; their plumbing is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from leafiqa.data import read_folder  # noqa: E402
from leafiqa.data.images import open_rgb  # noqa: E402
from leafiqa.judgments.runner import teach  # noqa: E402
from leafiqa.judgments.store import JudgmentStore  # noqa: E402

WORDS = ["<pad>", "<unk>", "<image>", "user", "assistant", ":", "excellent", "good", "fair",
         "poor", "bad", "first", "second", "Good", "Poor", "rate", "quality"]


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    try:
        from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    except ImportError:  # older transformers
        from transformers import CLIPImageProcessor as CLIPImageProcessorPil

    torch.manual_seed(0)
    vocab = {w: i for i, w in enumerate(WORDS)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens(["<image>", "<pad>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>",
                                        pad_token="<pad>")
    template = ("{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}"
                "{% endfor %}{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}")
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 32},
                                              crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, chat_template=template, patch_size=16,
        vision_feature_select_strategy="default", image_token="<image>",
        num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=16),
        text_config=LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2,
                                vocab_size=len(WORDS)),
        image_token_index=vocab["<image>"], vision_feature_select_strategy="default",
        vision_feature_layer=-1)
    folder = tmp_path_factory.mktemp("tiny-llava")
    LlavaForConditionalGeneration(config).eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_point_and_pair_judgments_from_next_token_logits(tiny_vlm: Path,
                                                         image_folder: Path) -> None:
    from leafiqa.teachers.transformers_vlm import TransformersTeacher

    teacher = TransformersTeacher(str(tiny_vlm), device="cpu", batch_size=4)
    assert teacher.teacher_id == f"transformers:{tiny_vlm.name}"
    assert sorted(teacher.level_ids.values()) == [0, 1, 1, 2, 3, 3, 4]  # good/Good, poor/Poor
    store = JudgmentStore()
    report = teach(teacher, read_folder(image_folder), store, pairs_per_image=1, progress=False)
    assert report.points_new == 12 and report.points_failed == 0 and report.pairs_new > 0
    points = store.points(teacher.teacher_id)
    assert all(p.method == "logits" and len(p.probs) == 5 for p in points.values())
    assert len({round(p.score, 8) for p in points.values()}) > 1  # answers depend on the image
    # batched (left-padded) judgments equal one-at-a-time ones
    item = read_folder(image_folder)[3]
    single = np.array(teacher.level_probs(item)[0])
    batched = next(p for p in points.values() if p.image_name == item.name)
    assert np.allclose(single, batched.probs, atol=1e-5)
    # pair orders: P(first) when asked (A, B) is the model's answer for exactly that order
    pair = store.pairs(teacher.teacher_id)[0]
    images = {j.image_key: j.image_name for j in points.values()}
    a = open_rgb(image_folder / images[pair.key_a])
    b = open_rgb(image_folder / images[pair.key_b])
    rows = teacher.word_distributions([[a, b], [b, a]], teacher.prompts.pair, teacher.pair_ids, 2)
    assert rows[0, 0] == pytest.approx(pair.p_first_ab, abs=1e-5)
    assert rows[1, 0] == pytest.approx(pair.p_first_ba, abs=1e-5)
