"""bench/heldout_reward.py: Eq. 10's terms on saved test answers, on literal answers and rows."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from stvg_lab.data.sample import Sample
from stvg_lab.infer import make_prediction

BENCH = Path(__file__).resolve().parents[1] / "bench"
_spec = importlib.util.spec_from_file_location("bench_heldout_reward", BENCH / "heldout_reward.py")
heldout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(heldout)

# one 10-px box in frames 0-1 of a 2-frame, 56-px clip that the model saw whole, in the compact format
SAMPLE = Sample("c", None, "the red square", 2.0, 2, 56, 56, {0: [10.0, 10.0, 20.0, 20.0], 1: [10.0, 10.0, 20.0, 20.0]}, "synthetic")
PERFECT = "<time>0-1</time><think_bbox>[10,10,20,20][10,10,20,20]</think_bbox><pred_bbox>[10,10,20,20][10,10,20,20]</pred_bbox>"
BROKEN = "<time>0-1</time><think_bbox>[10,10,20"


def _answers(*texts: str) -> list:
    return [make_prediction(SAMPLE, t, [0, 1], (56, 56), "compact") for t in texts]


@pytest.mark.parametrize("texts, want", [
    # R_s sums the think and the pred tube's GIoU - L1 (Eq. 8): 2 for a perfect answer
    ([PERFECT], {"format": 1.0, "consistency": 1.0, "temporal": 1.0, "spatial": 2.0, "think": 0.0, "total": 5.0}),
    ([BROKEN], {"format": 0.0, "consistency": 0.0, "temporal": 0.0, "spatial": 0.0, "think": 0.0, "total": 0.0}),
    ([PERFECT, BROKEN], {"format": 0.5, "consistency": 0.5, "temporal": 0.5, "spatial": 1.0, "think": 0.0, "total": 2.5}),
])
def test_reward_terms_are_means_over_the_answers(texts, want):
    assert heldout.reward_terms(_answers(*texts), {"c": SAMPLE}) == pytest.approx(want)


def test_a_think_list_worse_than_the_pred_list_pays_the_think_reward():
    # think boxes 10 px right: they touch the truth, so GIoU 0 (no overlap; the enclosing box is the union),
    # and L1 is the mean of |Δ| / 56 over the 4 coordinates, 20 / 4 / 56: R_think = -5/56, R_pred = 1;
    # R_k = R_pred - R_think, weighted by λk = 0.5 in the total
    text = PERFECT.replace("<think_bbox>[10,10,20,20][10,10,20,20]", "<think_bbox>[20,10,30,20][20,10,30,20]")
    r_think = -5 / 56
    got = heldout.reward_terms(_answers(text), {"c": SAMPLE})
    assert got["spatial"] == pytest.approx(1 + r_think) and got["think"] == pytest.approx(1 - r_think)
    assert got["total"] == pytest.approx(3 + got["spatial"] + 0.5 * got["think"])


def test_answers_must_be_of_the_split_and_some():
    with pytest.raises(ValueError, match="1 answers for clips not in the test split, e.g. c"):
        heldout.reward_terms(_answers(PERFECT), {"other": SAMPLE})
    with pytest.raises(ValueError, match="no answers"):
        heldout.reward_terms([], {"c": SAMPLE})


def test_table_rows_are_mean_and_sample_std():
    row = lambda total, tiou: {**dict.fromkeys(heldout.TERMS, 0.5), "total": total, "m_tIoU": tiou, "m_vIoU": 0.1}  # noqa: E731
    lines = heldout.table({"start (SFT)": [row(1.0, 0.6)], "gdpo": [row(1.2, 0.5), row(1.4, 0.7)]}).splitlines()
    assert lines[0].startswith("| model | seeds | R format |") and lines[0].endswith("| R (Eq. 10) | m_tIoU | m_vIoU |")
    assert lines[2] == "| start (SFT) | 1 | 0.500 | 0.500 | 0.500 | 0.500 | 0.500 | 1.000 | 60.0 | 10.0 |"
    assert lines[3] == "| gdpo | 2 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.500 ± 0.000 | 0.500 ± 0.000 | 1.300 ± 0.141 | 60.0 ± 14.1 | 10.0 ± 0.0 |"
