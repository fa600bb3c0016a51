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
    rows = [{"differs": "colour", "outcome": "target", "iou": 0.8}, {"differs": "colour", "outcome": "distractor", "iou": 0.0},
            {"differs": None, "outcome": "missing", "iou": 0.0}, {"differs": "2+", "outcome": "none", "iou": 0.2}]
    table = outcome_table(rows)
    assert list(table) == ["2+", "colour", None, "all"]
    assert table["colour"] == {"n": 2, "target": 0.5, "distractor": 0.5, "none": 0.0, "missing": 0.0, "iou": 0.4}
    assert table["all"]["n"] == 4 and table["all"]["iou"] == pytest.approx(0.25)
    assert outcome_table(rows, lambda r: r["iou"] > 0)[True]["n"] == 2
    assert outcome_table([]) == {}


def _bench():
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("bench_which_object", Path(__file__).resolve().parent.parent / "bench" / "which_object.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_script_scores_answers_that_box_the_target_as_all_target(tmp_path):
    # predictions that copy the target's boxes (in model pixels) land on the target in every span frame
    import json

    from stvg_lab.data.synth import generate_synthetic, load_synthetic
    from stvg_lab.video import model_frame_size, sample_frame_indices

    data = generate_synthetic(tmp_path / "data", 1, 1, 3, seed=0, progress=False, workers=1)
    bench = _bench()
    lines = []
    for s in load_synthetic(data, "test"):
        mw, mh = model_frame_size(s.width, s.height)
        frames = sample_frame_indices(s.num_frames, s.fps)
        pred = {str(k): [v * r for v, r in zip(s.tube[int(f)], (mw / s.width, mh / s.height) * 2)] for k, f in enumerate(frames) if int(f) in s.tube}
        lines.append(json.dumps({"id": s.id, "pred": pred}))
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "predictions.jsonl").write_text("\n".join(lines) + "\n")
    rows = bench.rows_for(load_synthetic(data, "test"), bench.predictions(tmp_path / "run"), data)
    assert rows and {r["outcome"] for r in rows} == {"target"} and all(r["iou"] == pytest.approx(1.0) for r in rows)
    (tmp_path / "run" / "predictions.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(SystemExit, match=r"predictions.jsonl line 2: not a prediction row"):
        bench.predictions(tmp_path / "run")
