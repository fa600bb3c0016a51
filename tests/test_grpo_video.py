"""VideoGRPOTrainer: the GRPO loss, old and reference log-probs come from the policy that saw the video (Eq. 12).

The key test runs TRL's own training loop with ``beta > 0`` and ``steps_per_generation=2``. That
exercises the old-logprob, reference-logprob and loss forwards and the shuffle and split between
them. Every per-token log-prob TRL computes there is checked against an independent forward of the
same model. That forward takes one unpadded sample with its own video, goes through the model's
plain (unfused) forward and uses a log-softmax. Two prompts of different lengths give left padding.
The same harness on stock ``GRPOTrainer`` shows the bug: its log-probs differ and its vision tower
never trains.

The model is ``stvg_lab.model.build_tiny_model`` (Qwen2.5-VL with 0.2 M parameters and a small BPE
vocabulary), loaded with ``load_model``. Its processor is ``stvg_lab.processor``'s torchvision-free
``Qwen2_5_VLProcessor``. ``load_model`` also binds Qwen's text-position rule onto the policy instance,
so these tests check that the reference model uses that rule too.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from datasets import Dataset
from transformers import Qwen2_5_VLForConditionalGeneration
from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from stvg_lab.model import build_tiny_model, load_model, tiny_config
from stvg_lab.processor import Qwen2_5_VLFramesProcessor
from stvg_lab.train import grpo_video
from stvg_lab.train.grpo_video import (
    TRL_VERSION,
    VIDEO_FIELDS,
    VideoGRPOTrainer,
    check_trl_version,
    greedy_rows,
    merge_video_fields,
    select_rows,
    split_video_fields,
    video_token_type_ids,
)

INIT_STD = 0.1
"""Weights are redrawn with std 0.1 instead of 0.02. At 0.02 the random policy is almost uniform, so
leaving out the video moves log p only a little."""


@dataclass
class _Setup:
    processor: Qwen2_5_VLFramesProcessor
    model_dir: Path
    videos: list[np.ndarray]
    texts: list[str]

    @property
    def video_pad(self) -> int:
        return self.processor.tokenizer.convert_tokens_to_ids("<|video_pad|>")


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> _Setup:
    model_dir = build_tiny_model(tmp_path_factory.mktemp("tiny_qwen25vl"), seed=0)
    model, processor = load_model(model_dir, device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.ndim >= 2:
                param.normal_(0.0, INIT_STD)
    model.save_pretrained(model_dir)
    rng = np.random.default_rng(0)
    # Different video sizes (grids 2x4x4 and 1x4x6: 8 vs 6 placeholder tokens) and text lengths, so one
    # prompt is left-padded. Frames are multiples of 28 px, as stvg_lab.video delivers them.
    videos = [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(4, 56, 56, 3), (2, 56, 84, 3)]]
    texts = ["Where is the ball?", "Find the man in the red coat who opens the door and then sits down at the table."]
    return _Setup(processor, model_dir, videos, texts)


def _policy(setup: _Setup):
    return load_model(setup.model_dir, device="cpu")[0]


def _prompt(setup: _Setup, i: int) -> list[dict]:
    content = [{"type": "video", "video": setup.videos[i]}, {"type": "text", "text": setup.texts[i]}]
    return [{"role": "user", "content": content}]


def _dataset(setup: _Setup) -> Dataset:
    # Frames are attached on access (as a real loader decodes them), so they never go through Arrow.
    return Dataset.from_dict({"row": [0, 1]}).with_transform(
        lambda batch: {"prompt": [_prompt(setup, i) for i in batch["row"]], "row": batch["row"]}
    )


def _config(tmp_path, **overrides) -> GRPOConfig:
    settings = dict(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=False, learning_rate=1e-2,
        per_device_train_batch_size=2, steps_per_generation=2, num_generations=2, max_completion_length=6,
        beta=0.1, max_steps=2, logging_steps=1, save_strategy="no", report_to=[], seed=0,
    )
    settings.update(overrides)
    return GRPOConfig(**settings)


def _varied_reward(completion_ids, **kwargs) -> list[float]:
    # Differs between completions of one prompt, so advantages and gradients are non-zero.
    return [float(sum(ids) % 97) for ids in completion_ids]


def _constant_reward(completions, **kwargs) -> list[float]:
    return [1.0] * len(completions)


def _direct_logps(model, setup: _Setup, sample: int, completion: torch.Tensor) -> torch.Tensor:
    """log p(completion | video, prompt) from one unpadded sample through the model's plain forward."""
    enc = setup.processor.apply_chat_template(
        [_prompt(setup, sample)], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    prompt_len = enc["input_ids"].shape[1]
    ids = torch.cat([enc["input_ids"][0], completion])[None]  # (1, P + C)
    mm_types = torch.cat([enc["mm_token_type_ids"][0], torch.zeros_like(completion)])[None]
    with torch.no_grad():
        logits = model(
            input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=mm_types,
            pixel_values_videos=enc["pixel_values_videos"], video_grid_thw=enc["video_grid_thw"],
            second_per_grid_ts=torch.as_tensor(enc["second_per_grid_ts"]),
        ).logits[0]  # (P + C, V)
    logps = torch.log_softmax(logits[prompt_len - 1 : -1].float(), dim=-1)  # row j predicts completion token j
    return logps.gather(-1, completion[:, None])[:, 0]


@dataclass
class _Check:
    kind: str  # "old", "ref" or "loss"
    max_abs_diff: float
    tokens: int
    left_padded: bool
    logps: torch.Tensor  # (tokens,) what TRL computed for this row


def _checking(trainer_cls: type[GRPOTrainer], setup: _Setup) -> type[GRPOTrainer]:
    """``trainer_cls`` that compares every per-token log-prob it computes with ``_direct_logps``."""
    prompt_ids = {
        tuple(setup.processor.apply_chat_template(
            [_prompt(setup, i)], add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"][0]): i
        for i in range(len(setup.videos))
    }

    class Checking(trainer_cls):
        checks: list[_Check] = []

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, *args, **kw):
            out = super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, *args, **kw
            )
            kind = "ref" if model is self.ref_model else "loss" if torch.is_grad_enabled() else "old"
            prompt_len = input_ids.size(1) - logits_to_keep
            for row in range(input_ids.size(0)):
                prompt = input_ids[row, :prompt_len][attention_mask[row, :prompt_len].bool()]
                # The sample is found from its tokens, not from the trainer's bookkeeping.
                sample = prompt_ids[tuple(prompt.tolist())]
                n = int(attention_mask[row, prompt_len:].sum())
                direct = _direct_logps(model, setup, sample, input_ids[row, prompt_len : prompt_len + n])
                diff = (out[0][row, :n].detach().float() - direct).abs().max().item()
                left_padded = bool((attention_mask[row, :prompt_len] == 0).any())
                self.checks.append(_Check(kind, diff, n, left_padded, out[0][row, :n].detach().clone()))
            return out

    Checking.checks = []
    return Checking


@pytest.mark.parametrize(
    "trainer_cls, text_rope, sees_video",
    [
        (VideoGRPOTrainer, False, True),  # the fix: every forward equals a direct forward with the video
        (GRPOTrainer, False, False),  # stock TRL 1.16: same loop, log-probs of a model without the video
        (VideoGRPOTrainer, True, False),  # video features but 1-D text rope: the test also checks positions
    ],
)
def test_per_token_logps_equal_a_direct_forward_with_the_video(
    setup, tmp_path, monkeypatch, trainer_cls, text_rope, sees_video
):
    if text_rope:  # all-zero mm_token_type_ids make Qwen2.5-VL fall back to 1-D positions
        monkeypatch.setattr(grpo_video, "video_token_type_ids", lambda ids, video_token_id: torch.zeros_like(ids))
    model = _policy(setup)
    trainer = _checking(trainer_cls, setup)(
        model=model, reward_funcs=_varied_reward, args=_config(tmp_path), train_dataset=_dataset(setup),
        processing_class=setup.processor,
    )
    vision_before = {k: v.detach().clone() for k, v in model.model.visual.named_parameters()}
    trainer.train()

    checks = trainer.checks
    # all three forwards ran: old (steps_per_generation=2 > grad accumulation 1), ref (beta>0), loss
    assert {c.kind for c in checks} == {"old", "ref", "loss"}
    assert any(c.left_padded for c in checks) and all(c.tokens > 0 for c in checks)
    diffs = [c.max_abs_diff for c in checks]
    # Old and reference log-probs of the first batch come from identical weights, so the KL starts at 0.
    # This holds for the fix only because the reference shares the policy's text-position rule.
    old, ref = ([c.logps for c in checks if c.kind == kind][:4] for kind in ("old", "ref"))
    assert all(torch.allclose(o, r, atol=1e-6, rtol=0) for o, r in zip(old, ref, strict=True))
    vision_trained = any(not torch.equal(p, vision_before[k]) for k, p in model.model.visual.named_parameters())
    # Measured on 12 rows (4 each of old, ref and loss). The fix is at most 9.5e-7 off, one float32 ulp
    # of log p. Stock TRL is at least 0.16 off. With 1-D rope the error is at least 4.3e-2. Without the
    # shared rule, the reference differs from the old log-probs by 0.10.
    if sees_video:
        assert max(diffs) < 1e-5, [c for c in checks if c.max_abs_diff >= 1e-5]
        assert vision_trained  # the loss gradient reaches the video encoder
    else:
        assert min(diffs) > 1e-3  # every forward, not just some, computes a different policy
        assert vision_trained == (trainer_cls is VideoGRPOTrainer)  # stock: no gradient reaches the encoder


@pytest.mark.parametrize("num_generations", [2, 4])  # 2 prompts x 2 completions; 1 prompt x 4 completions
def test_two_training_steps_with_a_constant_reward_finish_with_finite_loss(setup, tmp_path, num_generations):
    trainer = VideoGRPOTrainer(
        model=_policy(setup), reward_funcs=_constant_reward,
        args=_config(tmp_path, num_generations=num_generations), train_dataset=_dataset(setup),
        processing_class=setup.processor,
    )
    result = trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert result.global_step == 2 and len(losses) == 2
    assert all(math.isfinite(loss) for loss in losses)


def test_generation_cannot_sample_a_video_placeholder(setup, tmp_path):
    trainer = VideoGRPOTrainer(
        model=_policy(setup), reward_funcs=_constant_reward,
        args=_config(tmp_path, beta=0.0), train_dataset=_dataset(setup), processing_class=setup.processor,
    )
    # TRL suppresses the image placeholder itself; the subclass adds the video one
    image_pad = setup.processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert {image_pad, setup.video_pad} <= set(trainer.generation_config.suppress_tokens)
    assert setup.video_pad in trainer.generation_kwargs["suppress_tokens"]


def test_reference_model_shares_the_policys_text_position_rule(setup, tmp_path):
    # load_model binds Qwen's rule on the policy instance; TRL's from_pretrained reference lacks it
    for trainer_cls, shared in [(VideoGRPOTrainer, True), (GRPOTrainer, False)]:
        trainer = trainer_cls(
            model=_policy(setup), reward_funcs=_constant_reward, args=_config(tmp_path),
            train_dataset=_dataset(setup), processing_class=setup.processor,
        )
        policy_rule = vars(trainer.model.model)["get_rope_index"].__func__
        reference_rule = vars(trainer.ref_model.model).get("get_rope_index")
        assert (reference_rule is not None and reference_rule.__func__ is policy_rule) == shared


def test_in_memory_model_with_beta_is_refused_before_trl_fails_obscurely(setup, tmp_path):
    # TRL would try from_pretrained("") for the reference model and fail on an empty repo id
    in_memory = Qwen2_5_VLForConditionalGeneration(tiny_config(setup.processor.tokenizer))
    with pytest.raises(ValueError, match="save_pretrained"):
        VideoGRPOTrainer(
            model=in_memory, reward_funcs=_constant_reward, args=_config(tmp_path, beta=0.1),
            train_dataset=_dataset(setup), processing_class=setup.processor,
        )


def _greedy_answer(model, setup: _Setup, sample: int, max_new_tokens: int) -> list[int]:
    """The policy's greedy completion of one unpadded prompt, through ``generate`` directly (EOS kept)."""
    enc = setup.processor.apply_chat_template(
        [_prompt(setup, sample)], add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    enc["second_per_grid_ts"] = torch.as_tensor(enc["second_per_grid_ts"])
    tok = setup.processor.tokenizer
    suppress = [tok.convert_tokens_to_ids("<|image_pad|>"), setup.video_pad]
    with torch.no_grad():
        out = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, suppress_tokens=suppress,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    ids = out[0, enc["input_ids"].shape[1]:].tolist()
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    return ids[: ids.index(eos) + 1] if eos in ids else ids


@pytest.mark.parametrize("greedy_in_group", [True, False])
def test_greedy_in_group_puts_the_greedy_answer_first_in_every_group(setup, tmp_path, greedy_in_group):
    seen: list[tuple[int, list[int]]] = []

    def recording_reward(completion_ids, row, **kwargs) -> list[float]:
        seen.extend(zip(row, completion_ids))
        return _varied_reward(completion_ids)

    recording_reward.__name__ = "recording_reward"
    # 2 prompts x 4 completions in one generation round; the first round runs before any update
    args = _config(tmp_path, num_generations=4, per_device_train_batch_size=4, max_completion_length=8, max_steps=1)
    trainer = VideoGRPOTrainer(
        model=_policy(setup), reward_funcs=recording_reward, args=args, train_dataset=_dataset(setup),
        processing_class=setup.processor, greedy_in_group=greedy_in_group,
    )
    trainer.train()
    first_round = seen[:8]
    assert [r for r, _ in first_round] == [first_round[0][0]] * 4 + [first_round[4][0]] * 4  # groups are contiguous
    initial = _policy(setup)
    greedy = {i: _greedy_answer(initial, setup, i, max_new_tokens=8) for i in (0, 1)}
    is_greedy = [ids == greedy[r] for r, ids in first_round]
    if greedy_in_group:
        assert is_greedy[0] and is_greedy[4]  # row 0 of each group, left-padded beside the other prompt
        assert not all(is_greedy)  # the other rows are still sampled (t = 1 on a random policy)
    else:
        assert not (is_greedy[0] and is_greedy[4])


def test_greedy_in_group_refuses_vllm_before_trl_starts_it(setup, tmp_path):
    with pytest.raises(NotImplementedError, match="greedy_in_group"):
        VideoGRPOTrainer(
            model=_policy(setup), reward_funcs=_constant_reward, args=_config(tmp_path, use_vllm=True),
            train_dataset=_dataset(setup), processing_class=setup.processor, greedy_in_group=True,
        )


@pytest.mark.parametrize(
    "local_rows, num_generations, process_index, want",
    [
        (8, 4, 0, [0, 4]),  # one process: the first row of each group
        (4, 8, 0, [0]),  # a group spans two processes: process 0 holds its first row...
        (4, 8, 1, []),  # ...and process 1 none
        (6, 4, 1, [2]),  # global rows 6..11: the group starting at global row 8
        (3, 1, 0, [0, 1, 2]),  # groups of one: every row is greedy
    ],
)
def test_greedy_rows_one_per_group(local_rows, num_generations, process_index, want):
    assert greedy_rows(local_rows, num_generations, process_index) == want


def test_select_rows_rebuilds_the_batch_flat_video_fields():
    per_sample = {
        "pixel_values_videos": [torch.full((4, 2), float(i)) for i in range(3)],
        "video_grid_thw": [torch.tensor([[1, 2, 2]])] * 3,
        "second_per_grid_ts": [torch.tensor([0.5 * (i + 1)], dtype=torch.float64) for i in range(3)],
    }
    fields = {name: None for name in VIDEO_FIELDS} | {"mm_token_type_ids": [[2, 0], [0, 2], [2, 2]]}
    out = select_rows(fields, per_sample, [0, 2])
    assert out["pixel_values_videos"][:, 0].tolist() == [0.0] * 4 + [2.0] * 4
    assert out["video_grid_thw"].tolist() == [[1, 2, 2], [1, 2, 2]]
    assert out["second_per_grid_ts"].tolist() == [0.5, 1.5]
    assert out["mm_token_type_ids"] == [[2, 0], [2, 2]]
    with pytest.raises(NotImplementedError, match="'pixel_values'"):
        select_rows({"pixel_values": torch.zeros(2, 3)}, per_sample, [0])


def test_sft_trainer_forward_gets_the_video_and_assistant_only_labels(setup, tmp_path):
    # The brief's claim about stock SFTTrainer. A `messages` column plus an empty `images` column selects
    # TRL's vision collator, which passes everything the processor returns to the model.
    model = _policy(setup)
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(dict(kwargs)), with_kwargs=True)
    answer = "<time> 0 - 1 </time>"
    dataset = Dataset.from_dict({"row": [0, 1]}).with_transform(lambda batch: {
        "messages": [_prompt(setup, i) + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]
                     for i in batch["row"]],
        "images": [[] for _ in batch["row"]],
    })
    args = SFTConfig(
        output_dir=str(tmp_path), use_cpu=True, bf16=False, activation_checkpointing=False, learning_rate=1e-3,
        per_device_train_batch_size=2, max_steps=1, save_strategy="no", report_to=[], assistant_only_loss=True,
        max_length=None, remove_unused_columns=False,  # the dataset's stored column is `row`, not `messages`
    )
    SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=setup.processor).train()
    inputs = seen[0]
    assert {"pixel_values_videos", "video_grid_thw", "second_per_grid_ts", "mm_token_type_ids"} <= set(inputs)
    assert inputs["video_grid_thw"].tolist() == [[2, 4, 4], [1, 4, 6]]
    for labels in inputs["labels"]:
        assert setup.processor.tokenizer.decode(labels[labels != -100]) == answer + "<|im_end|>\n"


# split_video_fields: grids (t, h, w) with merge 2 -> t*h*w patch rows, t*h*w/4 placeholder tokens
V, T = 9, 7  # a placeholder token id and a text token id
SPLIT_CASES = [
    # one video per prompt, different sizes: rows 32 and 24 go to prompts 0 and 1
    ([[2, 4, 4], [1, 4, 6]], [[T] + [V] * 8 + [T], [V] * 6], [[[2, 4, 4]], [[1, 4, 6]]], [32, 24]),
    # the middle prompt has no video: it gets empty tensors, the third prompt the second video
    ([[1, 2, 2], [1, 2, 2]], [[V], [T, T], [T, V]], [[[1, 2, 2]], [], [[1, 2, 2]]], [4, 0, 4]),
    # two videos in one prompt: both grids and both patch blocks go to that prompt
    ([[1, 2, 2], [1, 2, 4], [1, 2, 2]], [[V, T, V, V], [V]], [[[1, 2, 2], [1, 2, 4]], [[1, 2, 2]]], [12, 4]),
]


@pytest.mark.parametrize("grids, prompt_ids, want_grids, want_rows", SPLIT_CASES)
def test_split_video_fields_assigns_each_video_to_its_prompt(grids, prompt_ids, want_grids, want_rows):
    rows = int(torch.tensor(grids).prod(-1).sum())
    fields = {
        "pixel_values_videos": torch.arange(rows, dtype=torch.float32)[:, None].expand(rows, 24),
        "video_grid_thw": torch.tensor(grids),
        "second_per_grid_ts": [1.0] * len(grids),  # list of floats, as the processor returns it
    }
    split = split_video_fields(fields, prompt_ids, video_token_id=V, spatial_merge_size=2)
    assert [g.tolist() for g in split["video_grid_thw"]] == want_grids
    assert [len(p) for p in split["pixel_values_videos"]] == want_rows
    assert split["second_per_grid_ts"][0].dtype == torch.float64  # same conversion TRL feeds to generate
    merged = merge_video_fields(split, range(len(prompt_ids)), "cpu")
    assert torch.equal(merged["pixel_values_videos"], fields["pixel_values_videos"])  # round trip, row order kept
    assert merged["video_grid_thw"].tolist() == grids


@pytest.mark.parametrize(
    "grids, prompt_ids, message",
    [
        ([[1, 2, 2]], [[V, V]], "prompt row 0"),  # 2 placeholders but the video has 1 token
        ([[1, 2, 2], [1, 2, 2]], [[V]], "2 videos"),  # a video with no placeholder at all
    ],
)
def test_split_video_fields_rejects_placeholder_mismatch(grids, prompt_ids, message):
    rows = int(torch.tensor(grids).prod(-1).sum())
    fields = {"pixel_values_videos": torch.zeros(rows, 24), "video_grid_thw": torch.tensor(grids)}
    with pytest.raises(ValueError, match=message):
        split_video_fields(fields, prompt_ids, video_token_id=V, spatial_merge_size=2)


def test_merge_video_fields_takes_a_row_slice():
    per_sample = {
        "pixel_values_videos": [torch.full((4, 2), float(i)) for i in range(3)],
        "video_grid_thw": [torch.tensor([[1, 2, 2]])] * 3,
        "second_per_grid_ts": [torch.tensor([0.5 * (i + 1)]) for i in range(3)],
    }
    merged = merge_video_fields(per_sample, range(1, 3), "cpu")  # rows 1 and 2 of a shuffled mini-batch
    assert set(merged) == set(VIDEO_FIELDS)
    assert merged["pixel_values_videos"][:, 0].tolist() == [1.0] * 4 + [2.0] * 4
    assert merged["second_per_grid_ts"].tolist() == [1.0, 1.5]


def test_video_token_type_ids_mark_only_video_placeholders():
    ids = torch.tensor([[0, 0, V, V, T], [T, V, 8, T, 0]])  # left pad 0; 8 stands for the image pad
    assert video_token_type_ids(ids, V).tolist() == [[0, 0, 2, 2, 0], [0, 2, 0, 0, 0]]


@pytest.mark.parametrize("version, ok", [(TRL_VERSION, True), ("1.17.0", False), ("1.16.0.dev0", False)])
def test_trl_version_is_checked_exactly(version, ok):
    if ok:
        check_trl_version(version)
    else:
        with pytest.raises(RuntimeError, match=f"trl=={TRL_VERSION}"):
            check_trl_version(version)
