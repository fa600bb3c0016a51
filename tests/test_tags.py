"""stvg_lab.analysis.tags: m_tIoU / m_vIoU per value of one difficulty tag, as literal cases."""

from __future__ import annotations

import pytest

from stvg_lab.analysis.tags import tag_means


def _row(i, t, v, **tags):
    return {"id": f"s{i}", "tIoU_pred": t, "vIoU_pred": v, "tags": tags}


ROWS = [
    _row(0, 0.8, 0.4, n_distractors=0),
    _row(1, 0.6, 0.2, n_distractors=0),
    _row(2, 0.5, 0.1, n_distractors=2),
    _row(3, 0.0, 0.0, n_distractors=1),  # an unparsed answer: the evaluator writes 0
    _row(4, None, None, n_distractors=1),  # no prediction at all: counts as 0, as the metric does
    _row(5, 0.9, 0.3),  # no such tag
]


@pytest.mark.parametrize("tag, want", [
    ("n_distractors", {0: (2, 0.7, 0.3), 1: (2, 0.0, 0.0), 2: (1, 0.5, 0.1), None: (1, 0.9, 0.3)}),
    ("event", {None: (6, 2.8 / 6, 1.0 / 6)}),
])
def test_tag_means(tag, want):
    got = tag_means(ROWS, tag)
    assert list(got) == list(want)  # sorted values, None last
    assert {k: (g["n"], g["m_tIoU"], g["m_vIoU"]) for k, g in got.items()} == {k: pytest.approx(w) for k, w in want.items()}


def test_groups_weighted_by_n_give_the_overall_means():
    got = tag_means(ROWS, "n_distractors")
    n = sum(g["n"] for g in got.values())
    assert n == len(ROWS)
    assert sum(g["n"] * g["m_vIoU"] for g in got.values()) / n == pytest.approx(1.0 / 6)
    assert sum(g["n"] * g["m_tIoU"] for g in got.values()) / n == pytest.approx(2.8 / 6)


def test_string_tags_sort_and_mixed_types_do_not_fail():
    rows = [_row(0, 1, 1, event="move"), _row(1, 0, 0, event="appear"), _row(2, 0, 0, event=3)]
    assert list(tag_means(rows, "event")) == [3, "appear", "move"]


def test_a_row_that_is_not_the_evaluators_is_named():
    with pytest.raises(ValueError, match=r"row 2 \(id 'x'\) has no \['vIoU_pred'\]"):
        tag_means([ROWS[0], {"id": "x", "tIoU_pred": 0.5}], "n_distractors")
