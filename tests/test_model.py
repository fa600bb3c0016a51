"""stvg_lab.model: the CPU stand-in, load_model, inputs, generation and text positions after a video."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoTokenizer, LogitsProcessor, LogitsProcessorList

from stvg_lab.answer import FORMATS, format_answer
from stvg_lab.model import (
    QWEN_FIRST_SPECIAL_ID,
    QWEN_SPECIAL_TOKENS,
    ModelNotFoundError,
    build_model_inputs,
    build_tiny_model,
    build_tokenizer,
    count_parameters,
    generation_kwargs,
    load_model,
    mrope_band_frequencies,
    mrope_section,
    TinySize,
    tiny_config,
    qwen_vocab_dir,
    train_bpe_tokenizer,
    bpe_corpus,
)
from stvg_lab.processor import ASSETS, VISION_SPECIAL_TOKENS, prompt_order, stvg_chat_template

ANSWER = format_answer((1, 2), {1: [10, 20, 50, 80], 2: [12, 20, 52, 80]}, None, "paper")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny"))
    model, processor = load_model(path, device="cpu")
    return path, model, processor


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer("bpe")


@pytest.fixture(scope="module")
def qwen():
    return build_tokenizer("qwen")


def frames(t: int = 4, h: int = 56, w: int = 56, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def test_load_model_cpu_defaults(tiny):
    path, model, processor = tiny
    assert model.dtype == torch.float32
    assert model.config._attn_implementation == "sdpa"
    assert not model.training
    assert type(processor).__name__ == "Qwen2_5_VLFramesProcessor"
    assert json.loads((path / "stvg_tiny.json").read_text())["vocab"] == "bpe"


def test_parameter_count_in_stated_range(tiny):
    # "a few hundred thousand to a few million parameters"
    assert 100_000 <= count_parameters(tiny[1]) <= 5_000_000


def test_config_is_consistent_with_qwen25vl(tiny):
    _, model, processor = tiny
    cfg, tok = model.config, processor.tokenizer
    text, vision = cfg.text_config, cfg.vision_config
    head_dim = text.hidden_size // text.num_attention_heads
    assert sum(text.rope_parameters["mrope_section"]) == head_dim // 2
    assert vision.out_hidden_size == text.hidden_size
    assert (vision.patch_size, vision.spatial_merge_size, vision.temporal_patch_size, vision.tokens_per_second) == (14, 2, 2, 2)
    for attr, token in [("video_token_id", "<|video_pad|>"), ("image_token_id", "<|image_pad|>"),
                        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]:
        assert getattr(cfg, attr) == tok.convert_tokens_to_ids(token)
    assert text.vocab_size >= len(tok) and text.vocab_size % 64 == 0
    assert text.eos_token_id == tok.convert_tokens_to_ids("<|im_end|>")


# (head_dim, expected (t, h, w) rotary sections)
MROPE_CASES = [
    (128, [16, 24, 24]),  # Qwen2.5-VL-7B's own split
    (16, [2, 3, 3]),  # the stand-in's default
    (32, [4, 6, 6]),
]


@pytest.mark.parametrize("head_dim, expected", MROPE_CASES)
def test_mrope_section(head_dim, expected):
    assert mrope_section(head_dim) == expected


# (head_dim, rope_theta, band, (highest, lowest) radians per position step)
MROPE_BAND_CASES = [
    (32, 1e6, "t", (1.0, 0.0750)),
    (32, 1e6, "w", (1.78e-4, 2.37e-6)),  # the stand-in at Qwen's theta: neighbouring cells look alike
    (128, 1e6, "w", (1.78e-4, 1.24e-6)),  # Qwen2.5-VL-7B: the same weak width band
    (32, 10.0, "h", (0.562, 0.274)),  # tiny_cpu.yaml: a 4x4 grid spans ~1-2 rad
    (32, 10.0, "w", (0.237, 0.115)),
]


@pytest.mark.parametrize("head_dim, theta, band, expected", MROPE_BAND_CASES)
def test_mrope_band_frequencies(head_dim, theta, band, expected):
    assert mrope_band_frequencies(head_dim, theta)[band] == pytest.approx(expected, rel=1e-2)


def test_rope_theta_is_a_size_knob():
    tok = build_tokenizer("bpe")
    assert tiny_config(tok).text_config.rope_parameters["rope_theta"] == 1e6  # Qwen2.5-VL's
    assert tiny_config(tok, TinySize(rope_theta=10.0)).text_config.rope_parameters["rope_theta"] == 10.0


def test_build_tiny_model_rejects_unknown_knob(tmp_path):
    with pytest.raises(TypeError, match="hidden"):
        build_tiny_model(tmp_path, hiden_size=32)


def test_forward_with_video_gives_finite_loss_and_grads(tiny):
    _, model, processor = tiny
    inputs = build_model_inputs(processor, frames(), "Find the red square.", ANSWER)
    model.train()
    try:
        out = model(**inputs)
        out.loss.backward()
    finally:
        model.eval()
    assert torch.isfinite(out.loss)
    grad = model.model.visual.patch_embed.proj.weight.grad  # the video reached the loss
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
    model.zero_grad(set_to_none=True)


def test_labels_cover_only_the_answer(tiny):
    _, _, processor = tiny
    inputs = build_model_inputs(processor, [frames(), frames(6, 56, 84)], ["a", "a longer prompt"], [ANSWER, "<time> 0 - 0 </time>"])
    tok = processor.tokenizer
    for row, answer in enumerate([ANSWER, "<time> 0 - 0 </time>"]):
        labels = inputs["labels"][row]
        assert tok.decode(labels[labels != -100]) == answer + "<|im_end|>\n"
    assert inputs["attention_mask"][:, 0].all()  # training batches pad on the right
    assert inputs["mm_token_type_ids"].shape == inputs["input_ids"].shape
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4], [3, 4, 6]]
    assert inputs["second_per_grid_ts"].tolist() == [1.0, 1.0]


def test_generation_inputs_pad_left(tiny):
    _, _, processor = tiny
    inputs = build_model_inputs(processor, [frames(), frames(6, 56, 84)], ["a", "a longer prompt"])
    assert "labels" not in inputs
    assert inputs["attention_mask"][:, -1].all()


def test_missing_mm_token_type_ids_falls_back_to_1d_positions(tiny):
    # Without mm_token_type_ids transformers 5.23 silently uses 1-D positions (the hurdle).
    _, model, processor = tiny
    inputs = build_model_inputs(processor, frames(), "Find it.")
    common = dict(input_ids=inputs["input_ids"], image_grid_thw=None, video_grid_thw=inputs["video_grid_thw"],
                  inputs_embeds=None, attention_mask=inputs["attention_mask"], past_key_values=None,
                  second_per_grid_ts=inputs["second_per_grid_ts"])
    model.model.rope_deltas = None
    assert model.model.compute_3d_position_ids(**common, mm_token_type_ids=None) is None
    assert model.model.compute_3d_position_ids(**common, mm_token_type_ids=inputs["mm_token_type_ids"]).shape[0] == 3


class BoostVisionTokens(LogitsProcessor):
    """Makes the vision tokens the most likely ones, so only suppression keeps them out."""

    def __init__(self, ids: list[int]):
        self.ids = ids

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, self.ids] += 1000.0
        return scores


def test_generation_never_emits_vision_tokens(tiny):
    _, model, processor = tiny
    inputs = build_model_inputs(processor, frames(), "Find it.")
    vision_ids = processor.tokenizer.convert_tokens_to_ids(list(VISION_SPECIAL_TOKENS))
    boost = LogitsProcessorList([BoostVisionTokens(vision_ids)])
    n = inputs["input_ids"].shape[1]
    kwargs = generation_kwargs(processor)
    assert sorted(kwargs["suppress_tokens"]) == sorted(vision_ids)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False, logits_processor=boost, **kwargs)
        unsuppressed = model.generate(**inputs, max_new_tokens=2, do_sample=False, logits_processor=boost, suppress_tokens=[])
    assert not set(out[0, n:].tolist()) & set(vision_ids)
    assert set(unsuppressed[0, n:].tolist()) & set(vision_ids)  # control: the boost alone does emit them
    assert set(vision_ids) <= set(model.generation_config.suppress_tokens)  # load_model's default


# names that are neither a local directory nor cached (HF_HUB_OFFLINE=1 in conftest)
MISSING_CASES = [
    "Qwen/Qwen2.5-VL-7B-Instruct",  # a hub id
    "/models/does-not-exist",  # an absolute path
    "./checkpoints/missing",  # a relative path
    "not a valid repo id!",  # neither
]


@pytest.mark.parametrize("name", MISSING_CASES)
def test_missing_checkpoint_is_one_clear_sentence(name):
    with pytest.raises(ModelNotFoundError) as info:
        load_model(name)
    message = str(info.value)
    assert message == (
        f"{name!r} is not a local directory and cannot be downloaded here; pass the path of a downloaded "
        "checkpoint, e.g. load_model('/models/Qwen2.5-VL-7B-Instruct')"
    )
    assert info.value.__cause__ is None and "\n" not in message


def _text_after_video(model, processor, t: int, h: int, w: int) -> int:
    """Position of the first text token after the video, relative to the video's first position."""
    inputs = build_model_inputs(processor, frames(t, h, w), "x")
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"], attention_mask=inputs["attention_mask"],
    )
    video = (inputs["mm_token_type_ids"][0] == 2).nonzero().flatten()
    return int(positions[0, 0, video.max() + 1] - positions[0, 0, video[0]])


# (T, H, W, Qwen's offset = max(2*(T/2 - 1), H/28 - 1, W/28 - 1) + 1, transformers 5.23's = max(H, W)/28)
TEXT_POSITION_CASES = [
    (2, 56, 56, 2, 2),  # one temporal patch: spatial extent wins, both agree
    (12, 336, 336, 12, 12),  # 12 frames at 336 px: temporal max 10 < spatial 11, both agree
    (12, 224, 224, 11, 8),  # 12 frames at 224 px: temporal max 10 > spatial 7, transformers restarts inside the video
    (40, 196, 336, 39, 12),  # a 20 s HC-STVG clip: Qwen 39, transformers 12
]


@pytest.mark.parametrize("t, h, w, qwen, upstream", TEXT_POSITION_CASES)
def test_text_positions_after_video(tiny, t, h, w, qwen, upstream):
    path, model, processor = tiny
    plain, _ = load_model(path, device="cpu", text_positions="transformers")
    assert _text_after_video(model, processor, t, h, w) == qwen
    assert _text_after_video(plain, processor, t, h, w) == upstream


def test_qwen_text_positions_survive_generation(tiny):
    # generate() reuses rope_deltas from get_rope_index; with Qwen's rule it must still run and stay consistent.
    _, model, processor = tiny
    inputs = build_model_inputs(processor, [frames(12, 56, 56), frames(4, 56, 56)], ["x", "a longer prompt"])
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False, **generation_kwargs(processor))
    assert out.shape == (2, inputs["input_ids"].shape[1] + 3)


def test_qwen_vocabulary_has_qwen_ids(qwen):
    tok = qwen
    ids = tok.convert_tokens_to_ids([t for t, _ in QWEN_SPECIAL_TOKENS])
    assert ids == list(range(QWEN_FIRST_SPECIAL_ID, QWEN_FIRST_SPECIAL_ID + 22))
    assert (tok.convert_tokens_to_ids("<|video_pad|>"), len(tok)) == (151656, 151665)
    reference = AutoTokenizer.from_pretrained(qwen_vocab_dir())  # the package's own (Qwen3) tokenizer
    text = "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>" + ANSWER + "<|im_end|>\n"
    assert tok(text)["input_ids"] == reference(text)["input_ids"]


def test_bpe_vocabulary_layout(bpe):
    ids = bpe.convert_tokens_to_ids([t for t, _ in QWEN_SPECIAL_TOKENS])
    assert ids == list(range(ids[0], ids[0] + 22))  # Qwen's order, right after the BPE vocabulary
    assert bpe.eos_token == "<|im_end|>" and bpe.pad_token == "<|endoftext|>"
    assert bpe.tokenize("<time>")[0] == "<time"  # tags are few tokens


@given(st.integers(0, 10**12))
def test_bpe_splits_digits_one_per_token(bpe, n):
    tokens = bpe.tokenize(str(n))
    assert tokens == list(str(n))


@given(st.text(max_size=80))
def test_bpe_round_trips_text(bpe, text):
    # byte-level BPE: any text (NFC-normalised, as Qwen's tokenizer does) encodes and decodes back
    import unicodedata

    ids = bpe(text, add_special_tokens=False)["input_ids"]
    assert bpe.decode(ids) == unicodedata.normalize("NFC", text)


def test_bpe_training_is_deterministic():
    # assets/bpe was written by write_bpe_assets(); retraining on the same texts gives the same merges
    texts = bpe_corpus(n=300)
    assert train_bpe_tokenizer(texts, 512) == train_bpe_tokenizer(texts, 512)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_bpe_counts_answer_tokens_like_qwen(bpe, qwen, fmt):
    # the reason the stand-in may use the small vocabulary: sequence lengths stay those of Qwen2.5-VL
    pred = {k: [101 + 4 * k, 38 + k, 189 + 4 * k, 187 - k] for k in range(3, 10)}
    answer = format_answer((3, 9), pred, None, fmt)
    n_bpe, n_qwen = (len(t(answer, add_special_tokens=False)["input_ids"]) for t in (bpe, qwen))
    assert abs(n_bpe - n_qwen) <= 2


def test_qwen_vocabulary_stand_in_builds_and_runs(tmp_path):
    model, processor = load_model(build_tiny_model(tmp_path, vocab="qwen"), device="cpu")
    assert model.config.text_config.vocab_size == 151680
    assert model.config.video_token_id == 151656
    with torch.no_grad():
        assert torch.isfinite(model(**build_model_inputs(processor, frames(), "x", ANSWER)).loss)


def _answer_offset(model, processor, prompt: str) -> int:
    """mRoPE text position of the answer's first token minus that of the first video token."""
    inputs = build_model_inputs(processor, frames(), prompt, "12")
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"], inputs["mm_token_type_ids"], video_grid_thw=inputs["video_grid_thw"],
        second_per_grid_ts=inputs["second_per_grid_ts"], attention_mask=inputs["attention_mask"],
    )
    video = (inputs["mm_token_type_ids"][0] == 2).nonzero().flatten()
    answer = (inputs["labels"][0] != -100).nonzero().flatten()
    return int(positions[0, 0, answer[0]] - positions[0, 0, video[0]])


@pytest.fixture
def template(tiny):
    """Set the tiny processor's chat template for one test, then put the saved one back."""
    processor = tiny[2]
    saved = processor.chat_template
    yield lambda text: setattr(processor, "chat_template", text)
    processor.chat_template = saved


# (template, one answer offset for prompts of different lengths?, rendered user turn starts with)
PROMPT_ORDER_CASES = [
    # Qwen's order: the prompt sits between the video and the answer, so its length moves the answer
    (False, False, "<|im_start|>user\n<|vision_start|>"),
    # text first: the answer is always the same number of positions after the video
    (True, True, "<|im_start|>user\nFind it.<|vision_start|>"),
]


@pytest.mark.parametrize("text_first, fixed, user_turn", PROMPT_ORDER_CASES)
def test_prompt_order_of_our_template(tiny, template, text_first, fixed, user_turn):
    _, model, processor = tiny
    template(stvg_chat_template(text_first=text_first))
    assert prompt_order(processor.chat_template) == ("text_first" if text_first else "video_first")
    offsets = {_answer_offset(model, processor, p) for p in ("a", "a much longer prompt than that")}
    assert (len(offsets) == 1) is fixed
    text = processor.tokenizer.decode(build_model_inputs(processor, frames(), "Find it.")["input_ids"][0])
    assert user_turn in text and text.count("Find it.") == 1


def test_video_first_template_is_the_shipped_one():
    assert stvg_chat_template(text_first=False) == (ASSETS / "chat_template.jinja").read_text(encoding="utf-8")
    assert prompt_order(None) == "video_first"  # a checkpoint without a template: Qwen's order
