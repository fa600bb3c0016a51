"""stvg_lab.analysis.counts: box-list length against the claimed span, as a table of literal cases."""

from __future__ import annotations

import pytest

from stvg_lab.analysis.counts import box_counts


def _p(span, think, pred, consistent=None):
    """A prediction dict as predictions.jsonl holds it; ``think``/``pred`` are box counts from the span's start."""
    box = [0, 0, 1, 1]
    lists = {name: None if k is None else {span[0] + i: box for i in range(k)} if span else None for name, k in (("think", think), ("pred", pred))}
    if consistent is None:
        consistent = span is not None and all(k is None or k == span[1] - span[0] + 1 for k in (think, pred))
    return {"span": span, **lists, "consistent": consistent}


UNPARSED = {"span": None, "think": None, "pred": None, "consistent": False}

CASES = [
    # predictions, parsed, consistent, think (extra, short, exact, long), pred (extra, short, exact, long)
    ([_p((2, 5), 4, 4)], 1.0, 1.0, (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
    ([_p((2, 5), 5, 6), _p((0, 1), 1, 2)], 1.0, 0.0, (0.0, 0.5, 0.0, 0.5), (1.0, 0.0, 0.5, 0.5)),
    ([_p((2, 5), 4, 4), UNPARSED], 0.5, 0.5, (0.0, 0.0, 1.0, 0.0), (0.0, 0.0, 1.0, 0.0)),
    ([_p((3, 3), None, 2)], 1.0, 0.0, None, (1.0, 0.0, 0.0, 1.0)),  # no-think format
]


@pytest.mark.parametrize("preds, parsed, consistent, think, pred", CASES)
def test_box_counts(preds, parsed, consistent, think, pred):
    out = box_counts(preds)
    assert (out["n"], out["parsed"], out["consistent"]) == (len(preds), parsed, consistent)
    keys = ("extra", "short", "exact", "long")
    assert (None if out["think"] is None else tuple(out["think"][k] for k in keys)) == think
    assert tuple(out["pred"][k] for k in keys) == pred


def test_all_unparsed_and_empty():
    out = box_counts([UNPARSED, UNPARSED])
    assert (out["parsed"], out["consistent"], out["think"], out["pred"]) == (0.0, 0.0, None, None)
    with pytest.raises(ValueError, match="no predictions"):
        box_counts([])


def test_reads_prediction_objects(tmp_path):
    from stvg_lab.infer import read_predictions

    # the saved answers of a real run carry span, lists and Eq. 4's flag; an object and its dict agree
    import json

    row = {"id": "a", "format": "compact", "text": "", "error": None, "detail": "", "span": [1, 2],
           "think": {"1": [0, 0, 1, 1], "2": [0, 0, 1, 1]}, "pred": {"1": [0, 0, 1, 1], "2": [0, 0, 1, 1], "3": [0, 0, 1, 1]},
           "consistent": False, "pred_tube": {}, "think_tube": {}, "frame_numbers": [0, 4, 8, 12], "model_size": [112, 112]}
    (tmp_path / "p.jsonl").write_text(json.dumps(row) + "\n")
    preds = read_predictions(tmp_path / "p.jsonl")
    assert box_counts(preds) == box_counts([row])
    assert box_counts(preds)["pred"]["extra"] == 1.0
