"""stvg_lab.analysis.which_object: which object a pred box lands on, and what tells the objects apart (literal cases)."""

from __future__ import annotations

import numpy as np
import pytest

from stvg_lab.analysis.which_object import difference, frame_rows, outcome_table, owner

A, B, C = [0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]

OWNER_CASES = [
    # (box, candidates, owner)
    (A, [A, B], 0),
    ([21, 21, 31, 31], [A, B], 1),
    ([5, 5, 25, 25], [A, B], 0),        # touches both equally (25 px each): the first
    ([8, 8, 28, 28], [A, [15, 15, 30, 30]], 1),  # overlaps both, the second more
    (C, [A, B], None),                   # on neither: on the background
    (A, [None, B], None),                # an object not in view never owns a box
    (A, [], None),
]


@pytest.mark.parametrize("box, candidates, expected", OWNER_CASES)
def test_owner(box, candidates, expected):
    assert owner(box, candidates) == expected


T = {"size": "large", "colour": "red", "shape": "circle", "motion": "left"}
DIFFERENCE_CASES = [
    ({**T, "colour": "blue"}, "colour"),
    ({**T, "size": "small"}, "size"),
    ({**T, "motion": "still"}, "motion"),
    ({**T, "shape": "square", "colour": "blue"}, "2+"),
]


@pytest.mark.parametrize("distractor, expected", DIFFERENCE_CASES)
def test_difference(distractor, expected):
    assert difference(T, distractor) == expected


def test_difference_refuses_a_distractor_the_sentence_also_names():
    with pytest.raises(ValueError, match="a distractor with the target's attributes"):
        difference(T, dict(T))


def _object(role, attrs, box, visible):
    return {"role": role, "attributes": attrs, "boxes": np.array([box] * 4, dtype=float), "visible": np.array(visible)}


def test_frame_rows_give_each_span_frame_an_outcome():
    objects = [
        _object("distractor", {**T, "shape": "square", "colour": "blue"}, B, [True, True, True, True]),
        _object("distractor", {**T, "colour": "blue"}, C, [False, True, True, False]),  # the more confusable, in view at 1-2
        _object("target", T, A, [True] * 4),
    ]
    # sampled frames 0-3 -> source frames 0-3; the model sees the frame at twice the source size
    pred = {0: [0, 0, 20, 20], 1: [80, 80, 100, 100], 2: [62, 62, 78, 78]}  # target, the colour distractor, nothing; frame 3: no box
    rows = frame_rows("c", {0: 0, 1: 1, 2: 2, 3: 3}, pred, objects, scale=(2.0, 2.0))
    assert [(r["frame"], r["outcome"], r["differs"], r["differ"]) for r in rows] == [
        (0, "target", "2+", ("colour", "shape")),
        (1, "distractor", "colour", ("colour",)),
        (2, "none", "colour", ("colour",)),
        (3, "missing", "2+", ("colour", "shape")),
    ]
    assert [r["iou"] for r in rows] == [1.0, 0.0, 0.0, 0.0]
    alone = frame_rows("d", {5: 0}, {5: [0, 0, 10, 10]}, [objects[2]], scale=(2.0, 2.0))
    assert [(r["outcome"], r["differs"], r["differ"], r["iou"]) for r in alone] == [("target", None, None, 0.25)]


def test_outcome_table_shares_sum_to_one_per_group():
    rows = [{"id": "a", "differs": "colour", "outcome": "target", "iou": 0.8}, {"id": "a", "differs": "colour", "outcome": "distractor", "iou": 0.0},
            {"id": "b", "differs": None, "outcome": "missing", "iou": 0.0}, {"id": "c", "differs": "2+", "outcome": "none", "iou": 0.2}]
    table = outcome_table(rows)
    assert list(table) == ["2+", "colour", None, "all"]
    # two frames of one clip
    assert table["colour"] == {"n": 2, "clips": 1, "target": 0.5, "distractor": 0.5, "none": 0.0, "missing": 0.0, "iou": 0.4}
    assert (table["all"]["n"], table["all"]["clips"]) == (4, 3) and table["all"]["iou"] == pytest.approx(0.25)
    assert outcome_table(rows, lambda r: r["iou"] > 0)[True]["n"] == 2
    assert outcome_table([]) == {}


def test_which_object_rows_of_answers_that_copy_the_target_are_all_target(tmp_path):
    # answers whose pred boxes are the target's (in model pixels) land on the target in every span frame;
    # an unparsed answer's span frames are "missing"; a sample without an answer is named
    from stvg_lab.analysis.which_object import which_object_rows
    from stvg_lab.data.synth import generate_synthetic, load_synthetic
    from stvg_lab.video import model_frame_size, sample_frame_indices

    data = generate_synthetic(tmp_path / "data", 1, 1, 3, seed=0, progress=False, workers=1)
    test = load_synthetic(data, "test")
    answers = []
    for s in test:
        mw, mh = model_frame_size(s.width, s.height)
        frames = [int(f) for f in sample_frame_indices(s.num_frames, s.fps)]
        pred = {str(k): [v * r for v, r in zip(s.tube[f], (mw / s.width, mh / s.height) * 2)] for k, f in enumerate(frames) if f in s.tube}
        answers.append({"id": s.id, "pred": pred, "frame_numbers": frames, "model_size": [mw, mh]})
    rows = which_object_rows(answers, test, data)
    assert len(rows) == sum(len([f for f in a["frame_numbers"] if f in s.tube]) for a, s in zip(answers, test))
    assert {r["outcome"] for r in rows} == {"target"} and all(r["iou"] == pytest.approx(1.0) for r in rows)
    answers[0] = {**answers[0], "pred": None, "error": "missing_tag"}
    assert {r["outcome"] for r in which_object_rows(answers, test, data) if r["id"] == test[0].id} == {"missing"}
    with pytest.raises(ValueError, match=rf"no prediction for sample '{test[1].id}'"):
        which_object_rows(answers[:1], test, data)
