"""stvg_lab.analysis.reliance: own-video vs swapped-video answer loss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from stvg_lab.analysis.reliance import (
    ANSWER_SEGMENTS,
    answer_segments,
    grounding_rows,
    prompt_segment_gaps,
    segment_gaps,
    swap_gap,
    video_reliance,
)
from stvg_lab.data.synth import generate_synthetic, load_synthetic
from stvg_lab.model import build_tiny_model, load_model


@pytest.fixture(scope="module")
def tiny_and_samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliance")
    path = build_tiny_model(root / "tiny")
    model, processor = load_model(path, device="cpu")
    data = generate_synthetic(root / "data", 0, 0, 3, seed=0, progress=False, workers=1)
    return model, processor, load_synthetic(data, "test")


def test_a_random_model_reacts_to_the_pixels(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    r = video_reliance(model, samples, "compact", processor=processor)
    assert r["n"] == 3 and np.isfinite([r["own"], r["swapped"]]).all()
    assert r["gap"] == pytest.approx(r["swapped"] - r["own"])
    assert r["gap"] != 0.0  # different frames reach the loss
    assert not model.training  # left as it was (load_model gives eval mode)


def test_identical_videos_give_no_gap(tiny_and_samples):
    # every sample points at the same mp4: the swap changes nothing, the gap is exactly 0
    model, processor, samples = tiny_and_samples
    same = [replace(s, video=samples[0].video, tube=samples[0].tube, query=samples[0].query) for s in samples]
    r = video_reliance(model, same, "compact", processor=processor)
    assert r["gap"] == 0.0 and r["own"] == r["swapped"]


def test_a_model_that_ignores_video_gives_no_gap(tiny_and_samples):
    # zero the vision merger's output layer: every video token becomes the same vector
    model, processor, samples = tiny_and_samples
    layer = model.model.visual.merger.mlp[-1]
    saved = (layer.weight.detach().clone(), None if layer.bias is None else layer.bias.detach().clone())
    try:
        with torch.no_grad():
            layer.weight.zero_()
        r = video_reliance(model, samples, "compact", processor=processor)
        assert r["gap"] == pytest.approx(0.0, abs=1e-6)
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved[0])


def test_errors_name_the_problem(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    with pytest.raises(ValueError, match="at least 2"):
        video_reliance(model, samples[:1], "compact", processor=processor)
    with pytest.raises(ValueError, match="processor"):
        video_reliance(model, samples, "compact")


def _rows(n: int, side: int = 56) -> list:
    rng = np.random.default_rng(0)
    return [(rng.integers(0, 256, (4, side, side, 3), dtype=np.uint8), f"where is thing {i}?", f"cell {i}") for i in range(n)]


def test_swap_gap_takes_any_question_and_batches(tiny_and_samples):
    model, processor, _ = tiny_and_samples
    rows = _rows(4)
    one = swap_gap(model, processor, rows)
    assert one["n"] == 4 and one["gap"] == pytest.approx(one["swapped"] - one["own"]) and one["gap"] != 0.0
    # batch_size=1 is the mean per-row loss: the same number as scoring each row alone
    alone = [swap_gap(model, processor, [rows[i], rows[(i + 1) % 4]])["own"] for i in range(4)]
    assert one["own"] == pytest.approx(float(np.mean(alone)), abs=1e-5)
    batched = swap_gap(model, processor, rows, batch_size=2)
    assert np.isfinite([batched["own"], batched["swapped"]]).all()
    same = [(rows[0][0], p, a) for _, p, a in rows]  # one video for every row: nothing to swap
    assert swap_gap(model, processor, same, batch_size=2)["gap"] == 0.0


def test_swap_gap_errors_name_the_row(tiny_and_samples):
    model, processor, _ = tiny_and_samples
    rows = _rows(2) + _rows(1, side=84)
    with pytest.raises(ValueError, match="at least 2"):
        swap_gap(model, processor, rows[:1])
    with pytest.raises(ValueError, match=r"row 1 has frames \(4, 56, 56, 3\), its decoy row 2"):
        swap_gap(model, processor, rows)
    with pytest.raises(ValueError, match="clip-b has frames"):
        swap_gap(model, processor, rows, names=["clip-a", "clip-b", "clip-c"])



def _digits_by_segment(answer: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for ch, seg in zip(answer, answer_segments(answer)):
        if seg is not None:
            out[seg] = out.get(seg, "") + ch
    return out


# (answer, the digits each segment gets, in order)
SEGMENT_CASES = [
    # compact: span, then boxes without frame labels
    ("<time>5-6</time><think_bbox>[0,0,56,84][0,1,56,85]</think_bbox><pred_bbox>[10,20,50,80][12,20,52,80]</pred_bbox>",
     {"time": "56", "think box 1": "005684", "think boxes 2+": "015685", "pred box 1": "10205080", "pred boxes 2+": "12205280"}),
    # paper: the frame labels "5." and "6." are not coordinates
    ("<time> 5 - 6 </time> <think_bbox> 5. [0,0,56,84], 6. [0,1,56,85] </think_bbox> <pred_bbox> 5. [10,20,50,80], 6. [12,20,52,80] </pred_bbox>",
     {"time": "56", "think box 1": "005684", "think boxes 2+": "015685", "pred box 1": "10205080", "pred boxes 2+": "12205280"}),
    # no think; three boxes: the 2nd and 3rd share a segment
    ("<time> 5 - 7 </time> <pred_bbox> 5. [1,2,3,4], 6. [5,6,7,8], 7. [9,9,9,9] </pred_bbox>",
     {"time": "57", "pred box 1": "1234", "pred boxes 2+": "56789999"}),
    # an unclosed tag (a truncated answer) marks nothing in it
    ("<time>5-6</time><pred_bbox>[1,2,3,4]", {"time": "56"}),
    ("no tags 123", {}),
]


@pytest.mark.parametrize("answer, digits", SEGMENT_CASES)
def test_answer_segments(answer, digits):
    assert _digits_by_segment(answer) == digits
    assert len(answer_segments(answer)) == len(answer)


def test_segment_gaps_of_a_random_model(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    rows = grounding_rows(samples, "compact")
    r = segment_gaps(model, processor, rows)
    assert set(r) <= set(ANSWER_SEGMENTS) and {"time", "think box 1", "pred box 1"} <= set(r)
    for seg, v in r.items():
        assert v["n"] > 0 and np.isfinite([v["own"], v["swapped"]]).all() and v["gap"] == pytest.approx(v["swapped"] - v["own"])
    assert any(v["gap"] != 0.0 for v in r.values())  # different frames reach the digits
    # the stand-in's BPE gives every digit its own token, so each marked digit is counted exactly once
    assert sum(v["n"] for v in r.values()) == sum(sum(seg is not None for seg in answer_segments(a)) for _, _, a in rows)


def test_segment_gaps_with_identical_videos_are_zero(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    rows = [(r[0], p, a) for r, (_, p, a) in zip([grounding_rows(samples, "compact")[0]] * 3, grounding_rows(samples, "compact"))]
    assert all(v["gap"] == 0.0 for v in segment_gaps(model, processor, rows).values())
    with pytest.raises(ValueError, match="at least 2"):
        segment_gaps(model, processor, rows[:1])


def test_prompt_segment_gaps_keep_the_frames_and_swap_the_prompt(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    rows = grounding_rows(samples, "compact")
    same = prompt_segment_gaps(model, processor, rows, [p for _, p, _ in rows])
    assert same and all(v["gap"] == 0.0 and v["n"] > 0 for v in same.values())  # the same prompt: nothing changes
    # another sentence in the prompt reaches the digits of a random model; the frames are the rows' own
    other = prompt_segment_gaps(model, processor, rows, [p.replace(s.query, "the tiny purple blob") for (_, p, _), s in zip(rows, samples)])
    assert set(other) == set(same) and any(v["gap"] != 0.0 for v in other.values())
    assert all(other[k]["own"] == same[k]["own"] and other[k]["n"] == same[k]["n"] for k in same)
    with pytest.raises(ValueError, match="3 rows but 2 decoy prompts"):
        prompt_segment_gaps(model, processor, rows, ["a", "b"])
