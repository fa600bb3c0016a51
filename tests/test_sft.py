"""SFT: think targets, training datasets, the per-step log, and short runs of the tiny model (train, resume, LoRA)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import TrainerCallback

from stvg_lab.answer import parse_answer
from stvg_lab.data.sample import Sample
from stvg_lab.data.synth import generate_synthetic
from stvg_lab.rewards import score_completion
from stvg_lab.train.dataset import (
    ClipCache,
    build_grpo_dataset,
    build_sft_dataset,
    frame_attribute_row,
    frame_box_row,
    frame_cell_row,
    clip_layout,
    load_samples,
    sft_target,
    snap_box_to_grid,
)
from stvg_lab.train.logging import JsonlLogCallback, read_log
from stvg_lab.train.recipe import load_recipe
from stvg_lab.train.runs import read_environment
from stvg_lab.train.sft import run_sft
from stvg_lab.video import reward_columns, tube_to_model

# ---------------------------------------------------------------- think target (no video needed)

# (box, frame size (w, h), snapped): boxes are rounded as the answer writes them, then snapped outward to 28 px
SNAP_CASES = [
    ([30, 40, 70, 90], (224, 224), [28, 28, 84, 112]),  # interior: x1,y1 down, x2,y2 up to multiples of 28
    ([28, 56, 84, 112], (224, 224), [28, 56, 84, 112]),  # already on the grid: unchanged
    ([27.6, 0.4, 56.4, 55.5], (224, 224), [28, 0, 56, 56]),  # rounded first (27.6 -> 28, 55.5 -> 56), so 28 not 0
    ([56, 56, 56, 56], (224, 224), [56, 56, 84, 84]),  # degenerate on a grid line: one cell to the right/below
    ([224, 224, 224, 224], (224, 224), [196, 196, 224, 224]),  # degenerate at the far corner: the cell inside
    ([300, 180, 336, 196], (336, 196), [280, 168, 336, 196]),  # touches the right/bottom edge of a 336x196 frame
    ([0, 0, 1, 1], (224, 224), [0, 0, 28, 28]),  # a 1-px box still gets one cell
]


@pytest.mark.parametrize("box, size, snapped", SNAP_CASES)
def test_snap_box_to_grid(box, size, snapped):
    assert snap_box_to_grid(box, size) == snapped


@given(
    st.integers(0, 11).map(lambda k: 28 * (k + 1)),
    st.integers(0, 11).map(lambda k: 28 * (k + 1)),
    st.lists(st.floats(0, 336, allow_nan=False), min_size=4, max_size=4),
)
def test_snap_contains_the_written_box_and_stays_on_grid(w, h, coords):
    x1, x2 = sorted(min(c, w) for c in coords[:2])
    y1, y2 = sorted(min(c, h) for c in coords[2:])
    sx1, sy1, sx2, sy2 = snap_box_to_grid([x1, y1, x2, y2], (w, h))
    rx1, ry1, rx2, ry2 = (int(round(v)) for v in (x1, y1, x2, y2))
    assert all(v % 28 == 0 for v in (sx1, sy1, sx2, sy2))  # frames are multiples of 28, so edges are too
    assert 0 <= sx1 < sx2 <= w and 0 <= sy1 < sy2 <= h
    assert sx1 <= rx1 and sy1 <= ry1 and sx2 >= min(rx2, w) and sy2 >= min(ry2, h)  # contains the written box
    # outward by less than one cell per side, or one cell inside the frame for a degenerate side
    for lo, hi, slo, shi in ((rx1, rx2, sx1, sx2), (ry1, ry2, sy1, sy2)):
        assert (lo - slo < 28 and shi - hi < 28) or (hi - lo == 0 and shi - slo == 28)


def _hand_sample() -> Sample:
    # 4 fps, 8 frames: kept frames 0, 2, 4, 6 at 2 fps. 448x224 -> model frame 336x168 (scale 0.75).
    # Tube on original frames 2..4: kept indices 1 (frame 2) and 2 (frame 4).
    return Sample(
        id="hand", video=None, query="the red ball", fps=4.0, num_frames=8, width=448, height=224,
        tube={2: [40, 40, 120, 100], 3: [60, 40, 140, 100], 4: [80, 40, 160, 100]},
    )


# frame 2 -> [30,30,90,75], frame 4 -> [60,30,120,75] (x0.75); grid: [28,28,112,84], [56,28,140,84]
PRED = "1. [30,30,90,75], 2. [60,30,120,75]"
TARGET_CASES = [
    ("paper", "grid", f"<time> 1 - 2 </time> <think_bbox> 1. [28,28,112,84], 2. [56,28,140,84] </think_bbox> <pred_bbox> {PRED} </pred_bbox>"),
    ("paper", "same", f"<time> 1 - 2 </time> <think_bbox> {PRED} </think_bbox> <pred_bbox> {PRED} </pred_bbox>"),
    ("no_think", "grid", f"<time> 1 - 2 </time> <pred_bbox> {PRED} </pred_bbox>"),  # Table 5's switch: think_target ignored
    ("compact", "grid", "<time>1-2</time><think_bbox>[28,28,112,84][56,28,140,84]</think_bbox><pred_bbox>[30,30,90,75][60,30,120,75]</pred_bbox>"),
]


@pytest.mark.parametrize("fmt, think_target, expected", TARGET_CASES)
def test_sft_target_serialisation(fmt, think_target, expected):
    layout = clip_layout(_hand_sample(), fps=2.0, max_side=336)
    assert layout.size == (336, 168) and layout.frame_numbers.tolist() == [0, 2, 4, 6]
    text = sft_target(_hand_sample(), layout, fmt, think_target)
    assert text == expected
    assert parse_answer(text, fmt).consistent


@pytest.mark.parametrize("think_target, think_reward_positive", [("grid", True), ("same", False)])
def test_grid_think_target_gives_a_think_reward(think_target, think_reward_positive):
    # The grid target is coarser than the pred list, so Eq. 9's R_k > 0 already for the SFT target
    sample = _hand_sample()
    layout = clip_layout(sample)
    cols = reward_columns(sample, layout.frame_numbers, layout.size)
    scores = score_completion(sft_target(sample, layout, "paper", think_target), **cols)
    assert scores["format"] == 1 and scores["consistency"] == 1 and scores["temporal"] == 1
    assert scores["spa_pred"] == pytest.approx(1.0, abs=0.02)  # integer rounding only
    assert (scores["think"] > 0.1) is think_reward_positive


# (which kept frame the rng picks, prompt's last line, answer): span 1-2 of 4 kept frames, boxes as PRED
FRAME_BOX_CASES = [
    ("first", "Give only its box in frame 1 of 0-3 as [x1,y1,x2,y2].", "[30,30,90,75]"),
    ("last", "Give only its box in frame 2 of 0-3 as [x1,y1,x2,y2].", "[60,30,120,75]"),
]


@pytest.mark.parametrize("pick, instruction, answer", FRAME_BOX_CASES)
def test_frame_box_row(pick, instruction, answer):
    rng = SimpleNamespace(integers=lambda lo, hi: lo if pick == "first" else hi - 1)  # hi is exclusive
    prompt, target = frame_box_row(_hand_sample(), clip_layout(_hand_sample()), rng)
    assert prompt == f"the red ball\n{instruction}" and target == answer


# at max side 112 the hand sample is 112x56, a 2x4 token grid; frame 2 -> [10,10,30,25] (centre x 20: column 0),
# frame 4 -> [20,10,40,25] (centre x 30: column 1); both centres at y 17.5: row 0
# (row maker, which kept frame the rng picks, prompt, answer); the attribute row asks the cell row's cells the other
# way round and leaves the sentence out, so its words must come from the pixels
CELL_ROW_CASES = [
    (frame_cell_row, "first", "the red ball\nIn which cell of the 2x4 grid is it in frame 1 of 0-3?", "00"),
    (frame_cell_row, "last", "the red ball\nIn which cell of the 2x4 grid is it in frame 2 of 0-3?", "01"),
    (frame_attribute_row, "first", "What colour and shape is the object in cell 00 of the 2x4 grid in frame 1 of 0-3?", "red circle"),
    (frame_attribute_row, "last", "What colour and shape is the object in cell 01 of the 2x4 grid in frame 2 of 0-3?", "red circle"),
]


@pytest.mark.parametrize("make_row, pick, prompt, answer", CELL_ROW_CASES)
def test_cell_rows(make_row, pick, prompt, answer):
    from dataclasses import replace

    rng = SimpleNamespace(integers=lambda lo, hi: lo if pick == "first" else hi - 1)
    sample = replace(_hand_sample(), extras={"attributes": {"size": "large", "colour": "red", "shape": "circle", "motion": "right"}})
    assert make_row(sample, clip_layout(sample, max_side=112), rng) == (prompt, answer)


def test_frame_attribute_row_needs_named_attributes():
    rng = SimpleNamespace(integers=lambda lo, hi: lo)
    with pytest.raises(ValueError, match="sample 'hand' has no extras\\['attributes'\\] with colour and shape"):
        frame_attribute_row(_hand_sample(), clip_layout(_hand_sample(), max_side=112), rng)


def test_frame_cell_row_needs_one_digit_cells():
    rng = SimpleNamespace(integers=lambda lo, hi: lo)
    with pytest.raises(ValueError, match="hand has a 6x12 token grid"):
        frame_cell_row(_hand_sample(), clip_layout(_hand_sample(), max_side=336), rng)


# ---------------------------------------------------------------- datasets on a tiny synthetic set


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("synth") / "data", 4, 2, 2, seed=0, progress=False, workers=1)


def _recipe(root: Path, out: Path, **overrides):
    # one row per clip unless a test asks for the auxiliary rows (tiny_cpu itself adds a cell row per clip)
    settings = dict(data=str(root), output_dir=str(out), max_steps=4, save_steps=2, logging_steps=1,
                    per_device_batch_size=2, warmup_ratio=0.0, aux_frame_cells=False)
    settings.update(overrides)
    return load_recipe("tiny_cpu", **settings)


def test_sft_dataset_rows(synth_root, tmp_path):
    recipe = _recipe(synth_root, tmp_path)
    samples = load_samples(recipe, "train")
    cache = ClipCache.from_recipe(recipe)
    ds = build_sft_dataset(samples, recipe, cache)
    assert len(cache) == 0  # building decodes nothing
    assert set(ds.column_names) == {"id", "messages", "images"}
    row = ds[1]
    user, assistant = row["messages"]
    video, text = user["content"]
    clip = cache.get(samples[1])
    assert video["type"] == "video" and video["video"] is clip.frames  # the cached array, not a copy
    assert video["video"].shape == (8, 112, 112, 3) and video["video"].dtype == np.uint8
    assert set(text) == {"type", "text"}  # Arrow's None keys are stripped
    assert "8 frames" in text["text"] and samples[1].query in text["text"]
    assert assistant["content"][0]["text"] == sft_target(samples[1], clip, recipe.answer_format, recipe.think_target)
    assert row["images"] == [] and row["id"] == samples[1].id
    assert cache.misses == 1 and len(cache) == 1


def test_sft_dataset_aux_frame_box_rows(synth_root, tmp_path):
    recipe = _recipe(synth_root, tmp_path, aux_frame_boxes=True)
    samples = load_samples(recipe, "train")
    cache = ClipCache.from_recipe(recipe)
    ds = build_sft_dataset(samples, recipe, cache)
    assert ds["id"] == [i for s in samples for i in (s.id, f"{s.id}/frame_box")]
    main, aux = ds[0], ds[1]
    assert aux["messages"][0]["content"][0]["video"] is main["messages"][0]["content"][0]["video"]  # same clip
    box = json.loads(aux["messages"][1]["content"][0]["text"])
    span = parse_answer(main["messages"][1]["content"][0]["text"], recipe.answer_format).span
    k = int(aux["messages"][0]["content"][1]["text"].split("frame ")[-1].split(" ")[0])
    assert span[0] <= k <= span[1]
    layout = cache.layout(samples[0])
    assert box == [round(v) for v in tube_to_model(samples[0], layout.frame_numbers, layout.size)[1][k]]
    assert len(build_sft_dataset(samples, _recipe(synth_root, tmp_path), cache)) == len(samples)  # off unless asked


def test_sft_dataset_both_aux_rows(synth_root, tmp_path):
    recipe = _recipe(synth_root, tmp_path, aux_frame_boxes=True, aux_frame_cells=True)
    samples = load_samples(recipe, "train")
    cache = ClipCache.from_recipe(recipe)
    ds = build_sft_dataset(samples, recipe, cache)
    assert ds["id"] == [i for s in samples for i in (s.id, f"{s.id}/frame_box", f"{s.id}/frame_cell")]
    # the box row draws from the recipe's rng first, as it does alone: adding cells does not change it
    alone = build_sft_dataset(samples, _recipe(synth_root, tmp_path, aux_frame_boxes=True), cache)
    assert ds[1]["messages"][1]["content"][0]["text"] == alone[1]["messages"][1]["content"][0]["text"]
    cell = ds[2]["messages"]
    assert cell[0]["content"][1]["text"].startswith(samples[0].query + "\nIn which cell of the 4x4 grid is it in frame ")
    row, col = cell[1]["content"][0]["text"]
    assert 0 <= int(row) < 4 and 0 <= int(col) < 4


def test_sft_dataset_attribute_rows(synth_root, tmp_path):
    recipe = _recipe(synth_root, tmp_path, aux_frame_cells=True, aux_frame_attributes=True)
    samples = load_samples(recipe, "train")
    ds = build_sft_dataset(samples, recipe, ClipCache.from_recipe(recipe))
    assert ds["id"] == [i for s in samples for i in (s.id, f"{s.id}/frame_cell", f"{s.id}/frame_attributes")]
    for s, row in zip(samples, ds.select(range(2, len(ds), 3))):
        question, answer = (m["content"][-1]["text"] for m in row["messages"])
        assert question.startswith("What colour and shape is the object in cell ") and s.query not in question
        assert answer == f"{s.extras['attributes']['colour']} {s.extras['attributes']['shape']}"


@pytest.mark.parametrize("flag, suffix", [("aux_frame_boxes", "frame_box"), ("aux_frame_cells", "frame_cell"),
                                          ("aux_frame_attributes", "frame_attributes")])
def test_aux_row_id_collision_is_named(synth_root, tmp_path, flag, suffix):
    from dataclasses import replace

    recipe = _recipe(synth_root, tmp_path, **{flag: True})
    samples = load_samples(recipe, "train")[:2]
    clash = [samples[0], replace(samples[1], id=f"{samples[0].id}/{suffix}")]
    with pytest.raises(ValueError, match=f"'{samples[0].id}/{suffix}' collides with the auxiliary row of '{samples[0].id}'"):
        build_sft_dataset(clash, recipe, ClipCache.from_recipe(recipe))


def test_grpo_dataset_rows(synth_root, tmp_path):
    recipe = _recipe(synth_root, tmp_path, answer_format="no_think")
    samples = load_samples(recipe, "train")
    cache = ClipCache.from_recipe(recipe)
    row = build_grpo_dataset(samples, recipe, cache)[0]
    clip = cache.get(samples[0])
    assert [m["role"] for m in row["prompt"]] == ["user"]  # no assistant turn
    assert row["prompt"][0]["content"][0]["video"] is clip.frames
    expected = reward_columns(samples[0], clip.frame_numbers, clip.size)
    assert row["gt_span"] == expected["gt_span"] and row["frame_size"] == expected["frame_size"]
    assert row["gt_tube"] == [[float(v) for v in r] for r in expected["gt_tube"]]
    assert row["answer_format"] == "no_think" and row["id"] == samples[0].id
    # the SFT target of the same sample scores full marks against these reward columns
    target = sft_target(samples[0], clip, "no_think", "grid")
    scores = score_completion(target, row["gt_span"], row["gt_tube"], row["frame_size"], row["answer_format"])
    assert scores["format"] == scores["consistency"] == scores["temporal"] == 1.0


@pytest.mark.slow  # a GRPO step with the tiny model (~5 s alone)
def test_grpo_trainer_accepts_the_transformed_dataset(synth_root, tmp_path):
    # TRL 1.16's GRPOTrainer indexes the dataset, so each row goes through the transform (frames attached),
    # and every column but `prompt` reaches the reward functions
    from trl import GRPOConfig

    from stvg_lab.model import build_tiny_model, load_model
    from stvg_lab.train.grpo_video import VideoGRPOTrainer

    recipe = _recipe(synth_root, tmp_path / "grpo", max_steps=1)
    seen = {}

    def spy(completions, prompts, **columns):
        seen.update(columns, video=prompts[0][0]["content"][0]["video"])
        return [0.0] * len(completions)

    model, processor = load_model(build_tiny_model(tmp_path / "base"), device="cpu")
    args = GRPOConfig(**(recipe.training_kwargs(cuda=False) | {"save_strategy": "no"}),
                      num_generations=2, max_completion_length=4, beta=0.0)
    VideoGRPOTrainer(model=model, reward_funcs=spy, args=args, processing_class=processor,
                     train_dataset=build_grpo_dataset(load_samples(recipe, "train"), recipe)).train()
    assert {"gt_span", "gt_tube", "frame_size", "answer_format", "id"} <= set(seen)
    assert isinstance(seen["video"], np.ndarray) and seen["video"].shape == (14, 224, 224, 3)


def test_clip_cache_lru_and_recipe_check(synth_root, tmp_path):
    recipe = _recipe(synth_root, tmp_path)
    a, b = load_samples(recipe, "train")[:2]
    cache = ClipCache(recipe.fps, recipe.max_side, max_items=1)
    first = cache.get(a)
    assert cache.get(a) is first and (cache.hits, cache.misses) == (1, 1)
    cache.get(b)  # evicts a
    assert a not in cache and b in cache and len(cache) == 1
    layout = cache.layout(a)
    assert layout.frame_numbers.tolist() == first.frame_numbers.tolist() and layout.size == first.size
    with pytest.raises(ValueError, match="from_recipe"):
        build_sft_dataset([a], recipe, ClipCache(fps=1.0))


# (recipe overrides, split, error type, message fragment)
LOAD_ERRORS = [
    ({"data": "{tmp}/nothing"}, "train", FileNotFoundError, "stvg-lab data synth"),  # synthetic set not generated
    ({"dataset": "hcstvg-v2", "data": "{tmp}"}, "train", FileNotFoundError, "train_v2.json"),  # real layout missing
    ({"dataset": "hcstvg-v1", "data": "{tmp}"}, "val", ValueError, "splits"),  # v1 has no val split
]


@pytest.mark.parametrize("overrides, split, error, message", LOAD_ERRORS)
def test_load_samples_errors(tmp_path, overrides, split, error, message):
    recipe = load_recipe("tiny_cpu", **{k: v.format(tmp=tmp_path) for k, v in overrides.items()})
    with pytest.raises(error, match=message):
        load_samples(recipe, split)


def test_load_samples_caps_training_samples(synth_root):
    recipe = load_recipe("tiny_cpu", data=str(synth_root), max_train_samples=3)
    assert len(load_samples(recipe, "train")) == 3 and len(load_samples(recipe, "val")) == 2  # cap is train-only


def test_cli_arguments_become_recipe_overrides(tmp_path):
    import argparse

    from stvg_lab.train.sft import add_sft_arguments, recipe_from_args

    parser = add_sft_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--recipe", "tiny_cpu", "--out", str(tmp_path / "sft"), "--max-steps", "7",
                              "--set", "learning_rate=1e-4", "--set", "answer_format=no_think"])
    recipe = recipe_from_args(args)
    assert (recipe.output_dir, recipe.max_steps, recipe.learning_rate) == (str(tmp_path / "sft"), 7, 1e-4)
    assert recipe.answer_format == "no_think" and recipe.data == "data/synthetic" and not args.resume
    with pytest.raises(ValueError, match="'learnig_rate'"):
        recipe_from_args(parser.parse_args(["--set", "learnig_rate=1"]))


def _epoch_orders(seed: int, epochs: int, tmp_path: Path) -> list[list[int]]:
    """The order in which the Trainer built from ``sft_config`` feeds 8 rows, epoch by epoch (no step is taken)."""
    from transformers import Trainer

    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.sft import sft_config

    class Rows(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            return {"idx": i}

    args = sft_config(load_recipe("tiny_cpu", seed=seed, output_dir=str(tmp_path / f"s{seed}"), per_device_batch_size=8), cuda=False)
    loader = Trainer(model=torch.nn.Linear(1, 1), args=args, train_dataset=Rows()).get_train_dataloader()
    orders = []
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        orders.append([int(i) for batch in loader for i in batch["idx"]])
    return orders


def test_sft_seeds_get_their_own_data_orders(tmp_path):
    """Trainer seeds epoch e's shuffle with data_seed + e; with data_seed = seed, seed 1's first epoch was
    seed 0's second (round 20). sft_config spaces the data seeds: seed 0 keeps its orders, seed 1 shares none."""
    from stvg_lab.train.sft import sft_data_seed

    assert [sft_data_seed(k) for k in (0, 1, 2)] == [0, 1_000_003, 2_000_006]
    s0, s1 = _epoch_orders(0, 3, tmp_path), _epoch_orders(1, 3, tmp_path)
    assert all(sorted(o) == list(range(8)) for o in s0 + s1)  # every row once per epoch
    assert len({tuple(o) for o in s0}) == 3  # epochs reshuffle
    assert not {tuple(o) for o in s0} & {tuple(o) for o in s1}  # with data_seed = seed, s1[0] == s0[1] and s1[1] == s0[2]


# ---------------------------------------------------------------- the per-step log


def _state(step, epoch=0.5, main=True):
    return SimpleNamespace(global_step=step, epoch=epoch, is_world_process_zero=main)


def test_log_callback_writes_jsonl_and_csv(tmp_path):
    cb = JsonlLogCallback(tmp_path)
    cb.on_train_begin(None, _state(0), None)
    cb.on_log(None, _state(1), None, logs={"loss": torch.tensor(2.5), "learning_rate": 1e-3})
    cb.on_log(None, _state(2), None, logs={"loss": float("nan"), "reward": np.float32(0.25)})  # new column, NaN kept
    cb.on_log(None, _state(2, main=False), None, logs={"loss": 9.0})  # other processes write nothing
    records = read_log(tmp_path)
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["loss"] == 2.5 and math.isnan(records[1]["loss"]) and records[1]["reward"] == 0.25
    assert records[0]["elapsed"] >= 0 and records[0]["time"] > 1.7e9
    header, *rows = (tmp_path / "log.csv").read_text().splitlines()
    assert header == "step,epoch,time,elapsed,loss,learning_rate,reward" and len(rows) == 2


def test_log_callback_drops_records_past_the_resumed_step(tmp_path):
    (tmp_path / "log.jsonl").write_text("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3)))
    cb = JsonlLogCallback(tmp_path)
    cb.on_train_begin(None, _state(2), None)  # resumed from checkpoint-2: step 3 will be logged again
    assert [r["step"] for r in read_log(tmp_path)] == [1, 2]


@pytest.mark.parametrize("rewards, want", [
    ([0.0, 1.0, 2.0, 3.0, 4.0], (0.0, 4.0)),  # a fifth of 5 steps is one step
    ([1.0] * 5 + [3.0] * 5, (1.0, 3.0)),  # two steps at each end
    ([2.0], (2.0, 2.0)),
])
def test_reward_change_first_and_last_fifth(rewards, want):
    from stvg_lab.train.logging import reward_change

    records = [{"step": i, "reward": r, "frac_reward_zero_std": 0.5} for i, r in enumerate(rewards)]
    records.append({"step": 99, "train_loss": 0.1})  # the end-of-training summary has no reward
    got = reward_change(records)
    assert (got["first"], got["last"], got["frac_reward_zero_std"]) == (*want, 0.5)


def test_reward_change_of_a_log_without_rewards_says_so():
    from stvg_lab.train.logging import reward_change

    with pytest.raises(ValueError, match="no logged record has a 'reward'"):
        reward_change([{"step": 1, "loss": 0.3}])


def test_read_log_names_a_broken_line(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"step": 1}\n{"step": 2, "lo\n')
    with pytest.raises(ValueError, match="line 2"):
        read_log(tmp_path)
    assert read_log(tmp_path / "missing") == []


# ---------------------------------------------------------------- short SFT runs of the tiny model


class _FirstBatchSpy(TrainerCallback):
    """Keeps the kwargs of the model's first training forward."""

    def __init__(self):
        self.inputs = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def hook(module, hook_args, hook_kwargs):
            if self.inputs is None and "labels" in hook_kwargs:
                self.inputs = dict(hook_kwargs)

        model.register_forward_pre_hook(hook, with_kwargs=True)


class _Crash(Exception):
    pass


class _CrashAfterSave(TrainerCallback):
    """Simulates a killed job: raises right after checkpoint-<step> is written."""

    def __init__(self, step):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Crash


@pytest.fixture(scope="module")
def full_run(synth_root, tmp_path_factory):
    """4 optimizer steps, batch 2, checkpoints at steps 2 and 4."""
    recipe = _recipe(synth_root, tmp_path_factory.mktemp("sft") / "run")
    spy = _FirstBatchSpy()
    final = run_sft(recipe, callbacks=[spy])
    return SimpleNamespace(recipe=recipe, run=Path(recipe.output_dir), final=final, spy=spy)


def test_run_logs_a_finite_loss_every_step(full_run):
    steps = [r for r in read_log(full_run.run) if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(math.isfinite(r["loss"]) and r["loss"] > 0 for r in steps)
    assert (full_run.run / "log.csv").read_text().startswith("step,epoch,time,elapsed")


def test_run_records_its_recipe_and_checkpoints(full_run):
    assert load_recipe(full_run.run / "recipe.yaml") == full_run.recipe
    assert load_recipe(full_run.final / "recipe.yaml") == full_run.recipe
    assert sorted(p.name for p in full_run.run.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert (full_run.run / "base" / "config.json").is_file()  # the stand-in was built into the run
    [env] = read_environment(full_run.run)
    assert env["resumed_from"] is None and env["torch_threads"] == full_run.recipe.torch_threads == 1
    assert env["packages"]["transformers"] == "5.23.0" and env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_a_broken_environment_line_is_named(tmp_path):
    (tmp_path / "environment.jsonl").write_text('{"python": "3.11"}\n{"python": \n')
    with pytest.raises(ValueError, match=r"environment.jsonl, line 2"):
        read_environment(tmp_path)
    assert read_environment(tmp_path / "never-ran") == []


def test_labels_cover_exactly_the_answer(full_run):
    from stvg_lab.model import load_model

    tokenizer = load_model(full_run.final, device="cpu")[1].tokenizer
    recipe = full_run.recipe
    cache = ClipCache.from_recipe(recipe)
    targets = {sft_target(s, cache.layout(s), recipe.answer_format, recipe.think_target) + "<|im_end|>\n"
               for s in load_samples(recipe, "train")}
    inputs = full_run.spy.inputs
    assert {"pixel_values_videos", "video_grid_thw", "mm_token_type_ids"} <= set(inputs)
    decoded = [tokenizer.decode(row[row != -100]) for row in inputs["labels"]]
    assert len(decoded) == 2 and set(decoded) <= targets


def test_final_checkpoint_loads_and_generates(full_run, synth_root):
    from stvg_lab.model import build_model_inputs, generation_kwargs, load_model
    from stvg_lab.task import prompt_text

    model, processor = load_model(full_run.final, device="cpu")
    sample = load_samples(full_run.recipe, "val")[0]
    clip = ClipCache.from_recipe(full_run.recipe).get(sample)
    inputs = build_model_inputs(processor, clip.frames, prompt_text(sample, clip, full_run.recipe.answer_format))
    out = model.generate(**inputs, max_new_tokens=5, min_new_tokens=5, do_sample=False, **generation_kwargs(processor))
    assert out.shape[1] == inputs["input_ids"].shape[1] + 5
    assert isinstance(processor.tokenizer.decode(out[0, inputs["input_ids"].shape[1]:]), str)


def test_existing_run_is_not_overwritten(full_run):
    with pytest.raises(FileExistsError, match="resume"):
        run_sft(full_run.recipe)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_resume_after_a_crash_reaches_the_same_model(full_run, tmp_path):
    recipe = full_run.recipe.replace(output_dir=str(tmp_path / "run"))
    with pytest.raises(_Crash):
        run_sft(recipe, callbacks=[_CrashAfterSave(2)])
    assert [p.name for p in (tmp_path / "run").glob("checkpoint-*")] == ["checkpoint-2"]
    final = run_sft(recipe, resume=True)
    assert [Path(e["resumed_from"] or "").name for e in read_environment(tmp_path / "run")] == ["", "checkpoint-2"]
    losses = {r["step"]: r["loss"] for r in read_log(tmp_path / "run") if "loss" in r}
    expected = {r["step"]: r["loss"] for r in read_log(full_run.run) if "loss" in r}
    assert sorted(losses) == [1, 2, 3, 4]  # no step logged twice
    assert losses == pytest.approx(expected, rel=1e-5)  # same data order, RNG, optimizer state
    resumed, uninterrupted = _weights(final), _weights(full_run.final)
    assert all(torch.allclose(resumed[k], uninterrupted[k], atol=1e-6) for k in uninterrupted)


class _StopAt(TrainerCallback):
    """Ends training after optimizer step ``step`` the way a user's callback would (no checkpoint there)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_average_from_step_makes_final_the_mean_once_the_run_is_complete(full_run, tmp_path, caplog):
    # checkpoints at steps 2 and 4 (save_steps 2); average_from_step 2 averages both
    recipe = full_run.recipe.replace(output_dir=str(tmp_path / "run"), average_from_step=2)
    with caplog.at_level("WARNING"):
        stopped = run_sft(recipe, callbacks=[_StopAt(3)])
    assert "stopped at step 3 of 4" in caplog.text and not (stopped / "averaged_from.json").exists()
    final = run_sft(recipe, resume=True)  # from checkpoint-2 to step 4, then the mean
    run = tmp_path / "run"
    two, four, mean = _weights(run / "checkpoint-2"), _weights(run / "checkpoint-4"), _weights(final)
    assert all(torch.allclose(mean[k], (two[k].double() + four[k].double()).div(2).float(), atol=1e-7) for k in mean)
    assert any(not torch.equal(mean[k], four[k]) for k in mean)  # not the last step's weights
    # the same run uninterrupted ends at the same step-4 weights: averaging leaves the checkpoints alone
    assert all(torch.allclose(four[k], _weights(full_run.final)[k], atol=1e-6) for k in four)
    record = json.loads((final / "averaged_from.json").read_text())
    assert [Path(c["path"]).name for c in record["checkpoints"]] == ["checkpoint-2", "checkpoint-4"]
    assert load_recipe(final / "recipe.yaml").average_from_step == 2


@pytest.mark.slow  # another training run; the fast suite covers resume with the crash test
def test_resume_with_more_steps(synth_root, tmp_path):
    first = _recipe(synth_root, tmp_path / "run", max_steps=2, save_steps=1)
    run_sft(first)
    final = run_sft(first.replace(max_steps=4), resume=True)
    state = json.loads((tmp_path / "run" / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    assert [r["step"] for r in read_log(tmp_path / "run") if "loss" in r] == [1, 2, 3, 4]
    assert load_recipe(tmp_path / "run" / "recipe.yaml").max_steps == 4
    assert load_recipe(tmp_path / "run" / "recipe.before-resume-1.yaml").max_steps == 2
    assert (final / "model.safetensors").is_file()


@pytest.mark.slow  # another training run (LoRA, merge, reload)
def test_lora_run_saves_adapter_and_merged_model(synth_root, tmp_path):
    from stvg_lab.model import load_model

    recipe = _recipe(synth_root, tmp_path / "run", lora=True, lora_r=4, max_steps=1, learning_rate=0.05)
    final = run_sft(recipe)
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    model, _ = load_model(final, device="cpu")  # a plain checkpoint: the adapter is merged
    base = load_model(tmp_path / "run" / "base", device="cpu")[0].state_dict()
    merged = model.state_dict()
    changed = [k for k in base if "q_proj.weight" in k and not torch.allclose(base[k], merged[k])]
    assert changed and not any("lora" in k for k in merged)


def test_freeze_vision_tower_stops_only_the_vit(tmp_path):
    from stvg_lab.model import build_tiny_model, load_model
    from stvg_lab.train.sft import freeze_vision_tower

    model, _ = load_model(build_tiny_model(tmp_path / "tiny"), device="cpu")
    visual = model.model.visual
    vit = [p for n, p in visual.named_parameters() if not n.startswith("merger.")]
    assert freeze_vision_tower(model) == sum(p.numel() for p in vit) > 0
    assert not any(p.requires_grad for p in vit)
    assert all(p.requires_grad for p in visual.merger.parameters())  # the projection into the LLM still learns
    assert all(p.requires_grad for p in model.model.language_model.parameters())


# ---------------------------------------------------------------- recipe sft_loss: row

L2 = -math.log(2)
# (log_probs (B, L-1), label_mask, accumulation, expected). Row 0: one answer token at log-prob -ln 2;
# row 1: three tokens at 0. Token mean (TRL's): ln 2 / 4; row mean: ln 2 / 2.
ROW_LOSS_CASES = [
    ("short uncertain + long confident", [[0, 0, L2], [0, 0, 0]], [[0, 0, 1], [1, 1, 1]], 1, math.log(2) / 2),
    ("same, 2 micro-batches per step", [[0, 0, L2], [0, 0, 0]], [[0, 0, 1], [1, 1, 1]], 2, math.log(2) / 4),
    ("equal lengths: the token mean", [[L2, 0, L2], [0, L2, 0]], [[1, 0, 1], [0, 1, 1]], 1, 3 * math.log(2) / 4),
    ("a row without answer tokens is left out", [[0, 0, 0], [2 * L2, 0, 0]], [[0, 0, 0], [1, 1, 0]], 1, math.log(2)),
    ("no answer tokens at all", [[0, 0, 0], [0, 0, 0]], [[0, 0, 0], [0, 0, 0]], 1, 0.0),
]


@pytest.mark.parametrize("case, log_probs, mask, accumulation, expected", ROW_LOSS_CASES)
def test_row_mean_loss(case, log_probs, mask, accumulation, expected):
    from stvg_lab.train.sft import row_mean_loss

    log_probs = torch.tensor(log_probs, dtype=torch.float32, requires_grad=True)
    loss = row_mean_loss(log_probs, torch.tensor(mask, dtype=torch.bool), accumulation)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    loss.backward()  # always a graph, even with nothing to learn
    assert log_probs.grad is not None


def test_run_with_row_loss_trains_on_it(synth_root, tmp_path, monkeypatch):
    import stvg_lab.train.sft as sft

    seen, original = [], sft.row_mean_loss

    def spy(log_probs, label_mask, accumulation=1):
        loss = original(log_probs, label_mask, accumulation)
        seen.append((tuple(label_mask.shape), label_mask.sum(dim=1).tolist(), loss.item(), loss.requires_grad))
        return loss

    monkeypatch.setattr(sft, "row_mean_loss", spy)
    recipe = _recipe(synth_root, tmp_path / "run", sft_loss="row", aux_frame_cells=True, max_steps=2, save_steps=2)
    run_sft(recipe)
    steps = [r for r in read_log(tmp_path / "run") if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2] and all(math.isfinite(r["loss"]) for r in steps)
    assert "mean_token_accuracy" in steps[0]  # TRL's metrics are still logged
    assert len(seen) == 2 and all(shape[0] == 2 and grad for shape, _, _, grad in seen)  # batch 2, one call a step
    assert [r["loss"] for r in steps] == pytest.approx([loss for _, _, loss, _ in seen], abs=1e-3)  # what was trained on
    # rows are grounding answers (70+ tokens) or 'cell' answers of a few ("1", "2", <|im_end|>, "\n")
    lengths = [n for _, row, _, _ in seen for n in row]
    assert min(lengths) <= 4 and all(n <= 4 or n > 50 for n in lengths), lengths
    with pytest.raises(ValueError, match="sft_loss"):
        _recipe(synth_root, tmp_path / "bad", sft_loss="sequence")


@pytest.mark.parametrize("order, text_before_video", [("text_first", True), ("video_first", False)])
def test_prompt_order_reaches_the_trainer_and_the_checkpoint(synth_root, tmp_path, order, text_before_video):
    from stvg_lab.model import build_model_inputs, load_model
    from stvg_lab.processor import prompt_order

    spy = _FirstBatchSpy()
    recipe = _recipe(synth_root, tmp_path / "run", prompt_order=order, max_steps=1, save_steps=1)
    final = run_sft(recipe, callbacks=[spy])
    processor = load_model(final, device="cpu")[1]
    assert prompt_order(processor.chat_template) == order  # saved with the weights: inference asks the same way
    trained = processor.tokenizer.decode(spy.inputs["input_ids"][0])
    asked = processor.tokenizer.decode(build_model_inputs(processor, np.zeros((4, 56, 56, 3), np.uint8), "Where is it?")["input_ids"][0])
    for text in (trained, asked):  # what SFT trained on, and what inference asks
        user_turn = text[text.index("<|im_start|>user\n"):]
        assert user_turn.startswith("<|im_start|>user\n<|vision_start|>") is not text_before_video, user_turn[:80]
    with pytest.raises(ValueError, match="prompt_order"):
        _recipe(synth_root, tmp_path / "bad", prompt_order="query_first")


@pytest.mark.parametrize("values, want", [
    ([0.0, 1.0, 2.0, 3.0, 4.0], (0.0, 4.0)),
    ([None, 1.0, None, 3.0], (1.0, 3.0)),  # records without the key do not count
])
def test_metric_change_of_one_column(values, want):
    from stvg_lab.train.logging import metric_change

    records = [{"step": i} if v is None else {"step": i, "kl": v} for i, v in enumerate(values)]
    assert metric_change(records, "kl") == want
    with pytest.raises(ValueError, match="no logged record has a 'entropy'"):
        metric_change(records, "entropy")
