"""stvg_lab.analysis.swap: own vs next clip's answer, on literal clips and answers (no model)."""

from __future__ import annotations

import math

import pytest

from stvg_lab.analysis.swap import swap_control
from stvg_lab.data.sample import Sample

A, B = [0, 0, 10, 10], [50, 50, 60, 60]  # two far-apart boxes


def _clip(sid: str, frames: range, box: list[float]) -> Sample:
    return Sample(id=sid, video=None, query="q", fps=2.0, num_frames=10, width=100, height=100, tube={f: box for f in frames})


def _answer(sid: str, frames: range, box: list[float], think: list[float] | None = None, error: str | None = None) -> dict:
    return {"id": sid, "error": error, "pred_tube": {str(f): box for f in frames} if not error else {},
            "think_tube": {str(f): think or box for f in frames} if not error else {}}


def test_a_reader_scores_its_own_clip_and_not_the_next():
    clips = [_clip("a", range(0, 4), A), _clip("b", range(4, 8), B)]
    r = swap_control([_answer("a", range(0, 4), A), _answer("b", range(4, 8), B)], clips)
    assert r["n"] == 2 and r["span"] == {"own": 1.0, "swapped": 0.0}
    # the swapped box is read at the nearest frame the other tube has: clip a's frames 0-3 take b's frame 4
    assert (r["pred"]["own_centre"], r["pred"]["swapped_centre"], r["pred"]["own_iou"], r["pred"]["swapped_iou"]) == (1.0, 0.0, 1.0, 0.0)
    assert (r["pred"]["distinct"], r["pred"]["frames"]) == (2, 8)
    assert r["pred"]["constant_centre"] == 0.5  # the most common box (a tie: the first counted, A) hits clip a only


def test_a_prior_scores_alike_both_ways_and_its_constant_box_is_itself():
    clips = [_clip("a", range(0, 4), A), _clip("b", range(0, 4), B), _clip("c", range(0, 4), A)]
    answers = [_answer(c.id, range(0, 4), A, think=B) for c in clips]  # the same answer whatever the clip
    r = swap_control(answers, clips)
    assert r["span"]["own"] == r["span"]["swapped"] == 1.0
    for tube, hit in (("pred", 2 / 3), ("think", 1 / 3)):
        got = r[tube]
        assert got["distinct"] == 1
        assert got["own_centre"] == got["swapped_centre"] == got["constant_centre"] == pytest.approx(hit)


def test_unparsed_answers_are_left_out_and_next_skips_them():
    clips = [_clip("a", range(0, 4), A), _clip("x", range(0, 4), A), _clip("b", range(6, 10), B)]
    answers = [_answer("a", range(0, 4), A), _answer("x", range(0, 4), A, error="bad_boxes"), _answer("b", range(6, 10), B)]
    r = swap_control(answers, clips)
    assert r["n"] == 2 and r["span"]["swapped"] == 0.0 and r["pred"]["swapped_centre"] == 0.0


def test_a_format_without_think_has_no_think_entry():
    clips = [_clip("a", range(0, 2), A), _clip("b", range(0, 2), B)]
    answers = [{**_answer(c.id, range(0, 2), A), "think_tube": None} for c in clips]
    r = swap_control(answers, clips)
    assert "think" not in r and math.isclose(r["pred"]["own_centre"], 0.5)


@pytest.mark.parametrize("answers, match", [
    ([_answer("a", range(0, 2), A)], "at least two parsed answers, got 1"),
    ([_answer("a", range(0, 2), A), _answer("b", range(0, 2), A, error="missing_tag")], "at least two parsed answers, got 1"),
    ([_answer("a", range(0, 2), A), _answer("zz", range(0, 2), A)], r"predictions for samples not given: \['zz'\]"),
])
def test_what_cannot_be_swapped_says_so(answers, match):
    clips = [_clip("a", range(0, 2), A), _clip("b", range(0, 2), B)]
    with pytest.raises(ValueError, match=match):
        swap_control(answers, clips)
