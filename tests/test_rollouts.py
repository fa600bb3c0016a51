"""stvg_lab.analysis.rollouts: what a sampled answer changes against the greedy one (literal cases)."""

from __future__ import annotations

import numpy as np
import pytest

from stvg_lab.analysis.rollouts import best_sample_kinds, frame_owners, kind_table, sample_difference

T_BOX, D_BOX = [0, 0, 10, 10], [20, 20, 30, 30]  # source pixels; the model sees them at twice the size


def _object(role, box, visible):
    return {"role": role, "attributes": {}, "boxes": np.array([box] * 4, dtype=float), "visible": np.array(visible)}


# a distractor (in view at source frames 0-2) drawn before the target (always in view)
OBJECTS = [_object("distractor", D_BOX, [True, True, True, False]), _object("target", T_BOX, [True] * 4)]
FRAMES = [0, 1, 2, 3]  # sampled frame k -> source frame
T, D, NONE = [0, 0, 20, 20], [40, 40, 60, 60], [70, 0, 79, 9]  # model pixels: on the target, the distractor, no object
T_JIT = [1, 1, 21, 21]  # the target's box moved a pixel: IoU 361 / 439 with T


def _answer(span, pred):
    return {"span": span, "pred": pred, "frame_numbers": FRAMES, "model_size": [80, 80]}


GREEDY = _answer([0, 2], {0: T, 1: D, 2: T})

DIFFERENCE_CASES = [
    # (sample, kind, shared, switched, to_target, box_iou)
    (_answer([0, 2], {0: T, 1: D, 2: T}), "same", 3, 0, 0, 1.0),
    (_answer([0, 2], {0: T_JIT, 1: D, 2: T}), "boxes", 3, 0, 0, (361 / 439 + 2) / 3),   # jitter on the same objects
    (_answer([0, 2], {0: T, 1: D}), "boxes", 2, 0, 0, 1.0),            # a frame left out is not an object change
    (_answer([0, 2], {0: T, 1: T, 2: T}), "object", 3, 1, 1, 1.0),     # frame 1 moved from the distractor to the target
    (_answer([0, 2], {0: NONE, 1: D, 2: T}), "object", 3, 1, 0, 1.0),  # frame 0 moved to the background
    (_answer([0, 3], {0: T, 1: D, 2: T, 3: T}), "span", 3, 0, 0, 1.0),  # another span, the shared frames on the same objects
    (_answer([1, 2], {1: T, 2: T}), "span+object", 2, 1, 1, 1.0),
    (_answer([0, 2], {0: D, 1: T, 2: D}), "object", 3, 3, 1, None),    # every frame switched: no box IoU to average
    (_answer(None, None), "unparsed", 0, 0, 0, None),
]


@pytest.mark.parametrize("sample, kind, shared, switched, to_target, iou", DIFFERENCE_CASES)
def test_sample_difference(sample, kind, shared, switched, to_target, iou):
    d = sample_difference(GREEDY, sample, OBJECTS, (2.0, 2.0))
    assert (d["kind"], d["shared"], d["switched"], d["to_target"]) == (kind, shared, switched, to_target)
    assert d["box_iou"] == (None if iou is None else pytest.approx(iou))


def test_an_unparsed_greedy_answer_makes_every_sample_unparsed():
    assert sample_difference(_answer(None, None), GREEDY, OBJECTS, (2.0, 2.0))["kind"] == "unparsed"


def test_jsonl_rows_with_string_keys_compare_like_predictions():
    row = lambda a: {**a, "pred": {str(k): b for k, b in a["pred"].items()}}  # noqa: E731
    sample = _answer([0, 2], {0: T_JIT, 1: D, 2: T})
    assert sample_difference(row(GREEDY), row(sample), OBJECTS, (2.0, 2.0)) == sample_difference(GREEDY, sample, OBJECTS, (2.0, 2.0))


def test_frame_owners_skip_objects_out_of_view():
    # source frame 3: the distractor is not in view, so a box on its place lies on no object
    assert frame_owners({0: D, 3: D, 2: T}, FRAMES, OBJECTS, (2.0, 2.0)) == {0: 0, 3: None, 2: 1}
    # a box past the clip's four sampled frames (a span that runs past the clip) lies in no frame
    assert frame_owners({3: T, 4: T, 9: D}, FRAMES, OBJECTS, (2.0, 2.0)) == {3: 1}


ROWS = [  # two groups; d_total: the sample's total reward minus its greedy answer's
    {"id": "a", "kind": "boxes", "d_total": 0.2}, {"id": "a", "kind": "boxes", "d_total": -0.1}, {"id": "a", "kind": "object", "d_total": 0.5},
    {"id": "b", "kind": "same", "d_total": 0.0}, {"id": "b", "kind": "boxes", "d_total": -0.3},
]


def test_kind_table():
    t = kind_table(ROWS)
    assert list(t) == ["same", "boxes", "object", "all"]  # kinds without a sample left out
    assert t["boxes"] == pytest.approx({"n": 3, "share": 0.6, "beats": 1 / 3, "gain": -0.2 / 3, "abs_gain": 0.2})
    assert t["same"]["beats"] == 0.0  # a tie does not beat
    assert t["all"] == pytest.approx({"n": 5, "share": 1.0, "beats": 0.4, "gain": 0.06, "abs_gain": 0.22})
    assert kind_table([]) == {}


def test_best_sample_kinds():
    # group a: its best sample switched the object; group b: no sample beats the greedy answer
    assert best_sample_kinds(ROWS) == {"object": 0.5, "none": 0.5}
    assert best_sample_kinds([]) == {}


def test_anatomy_rows_score_each_sample_against_its_greedy_answer(tmp_path):
    # greedy answers: the ground-truth tube (total 5.0: R_f + R_c + R_t = 3, R_s = 1 + 1 for the think and pred lists, R_k = 0);
    # generation 0 repeats them, generation 1 moves every box 2 px right on the same object
    from stvg_lab.answer import format_answer
    from stvg_lab.data.synth import generate_synthetic, load_synthetic
    from stvg_lab.analysis.rollouts import anatomy_rows
    from stvg_lab.infer import make_prediction
    from stvg_lab.video import model_frame_size, reward_columns, sample_frame_indices

    data = generate_synthetic(tmp_path / "data", 1, 1, 2, seed=0, progress=False, workers=1)
    test = load_synthetic(data, "test")
    greedy, moved = [], []
    for s in test:
        size = model_frame_size(s.width, s.height)
        frames = [int(f) for f in sample_frame_indices(s.num_frames, s.fps)]
        cols = reward_columns(s, frames, size)
        tube = {int(r[0]): r[1:] for r in cols["gt_tube"]}
        span = tuple(cols["gt_span"])
        greedy.append(make_prediction(s, format_answer(span, tube, fmt="compact"), frames, size, "compact"))
        shifted = {k: [b[0] + 2, b[1], b[2] + 2, b[3]] for k, b in tube.items()}
        moved.append(make_prediction(s, format_answer(span, shifted, tube, fmt="compact"), frames, size, "compact"))
    rows = anatomy_rows(test, greedy, [greedy, moved], data, "compact")
    assert [(r["id"], r["generation"], r["kind"]) for r in rows] == [(s.id, k, kind) for s in test for k, kind in ((0, "same"), (1, "boxes"))]
    for r in rows:
        assert r["greedy_total"] == pytest.approx(5.0)
        assert r["d_temporal"] == 0.0
        if r["generation"] == 0:
            assert (r["d_total"], r["d_spatial"], r["d_think"], r["box_iou"]) == (0.0, 0.0, 0.0, pytest.approx(1.0))
        else:  # the shifted pred boxes score below the exact think boxes: no think reward, a lower spatial one
            assert r["d_spatial"] < 0 and r["d_think"] == 0.0 and r["d_total"] == pytest.approx(r["d_spatial"])
            assert 0.5 < r["box_iou"] < 1.0 and r["switched"] == 0
    with pytest.raises(ValueError, match=rf"greedy answer 0 is of '{test[1].id}', not of sample '{test[0].id}'"):
        anatomy_rows(test, greedy[::-1], [greedy], data, "compact")
