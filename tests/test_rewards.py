"""stvg_lab.rewards: hand-computed cases for Eq. 3-10, the variants, the contract, and bounds.

Unless a case says otherwise the frame is 100 x 100 px, the ground truth spans frames 3..7
with the box G = [10, 10, 50, 50] in each, so the normalised L1 of a box is the sum of its
corner offsets / 100 / 4. The property tests feed every reward arbitrary text, text built
from the grammar's pieces, and mutated valid answers, against random ground truth.
"""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stvg_lab.answer import FORMATS, format_answer, get_format, parse_answer
from stvg_lab.metrics import evaluate
from stvg_lab.reward_variants import VARIANTS, reward_setup, reward_weights
from stvg_lab.rewards import (
    DEFAULT_REWARD_FUNCS,
    REWARD_BOUNDS,
    REWARDS,
    consistency_reward,
    format_reward,
    frame_bounds,
    make_spatial_reward,
    make_think_reward,
    make_total_reward,
    score_completion,
    spatial_bounds,
    spatial_reward,
    temporal_reward,
    think_bounds,
    think_reward,
    total_bounds,
    total_reward,
)

G = [10, 10, 50, 50]
SHIFT = [30, 10, 70, 50]  # G moved 20 px right: IoU 800/2400 = 1/3 = GIoU (C = union); L1 = 40/400 = 0.1
FAR = [60, 60, 90, 90]  # disjoint: C = 80x80 = 6400, union 2500 -> GIoU -0.609375; L1 = 180/400 = 0.45
GT_SPAN = [3, 7]
GT_ROWS = [[k, *G] for k in range(3, 8)]
SIZE = [100, 100]
COMPONENTS = ("format", "consistency", "temporal", "spatial", "think", "total")


def tube(first: int, last: int, box: list[float]) -> dict[int, list[float]]:
    return {k: list(box) for k in range(first, last + 1)}


def answer(span, pred, think=None, fmt="paper") -> str:
    return format_answer(span, pred, think, fmt)


PERFECT = answer((3, 7), tube(3, 7, G))
GIOU_L1_SHIFT = 1 / 3 - 0.1

# (id, text, gt_span, gt_tube, frame_size, answer_format, (R_f, R_c, R_t, R_s, R_k, R))
CASES = [
    # everything right: 1 + 1 + 1 + (1 + 1) + 0.5 * 0
    ("perfect", PERFECT, GT_SPAN, GT_ROWS, SIZE, "paper", (1, 1, 1, 2, 0, 5)),
    # span after the gt: empty intersection -> R_s = 0 under the paper's rule
    ("empty_overlap_after", answer((10, 12), tube(10, 12, G)), GT_SPAN, GT_ROWS, SIZE, "paper", (1, 1, 0, 0, 0, 2)),
    # span wholly before the gt
    ("empty_overlap_before", answer((0, 2), tube(0, 2, G)), GT_SPAN, GT_ROWS, SIZE, "paper", (1, 1, 0, 0, 0, 2)),
    # touching spans 7..9 vs 3..7: one frame in common, tIoU 1/7, that frame is perfect
    ("touching_spans", answer((7, 9), tube(7, 9, G)), GT_SPAN, GT_ROWS, SIZE, "paper", (1, 1, 1 / 7, 2, 0, 4 + 1 / 7)),
    # one-frame gt and one-frame answer on it
    ("one_frame_tubes", answer((5, 5), tube(5, 5, G)), [5, 5], [[5, *G]], SIZE, "paper", (1, 1, 1, 2, 0, 5)),
    # one-frame answer inside a 5-frame gt: tIoU 1/5, R_spa over the single shared frame
    ("one_frame_inside", answer((5, 5), tube(5, 5, G)), GT_SPAN, GT_ROWS, SIZE, "paper", (1, 1, 0.2, 2, 0, 4.2)),
    # longer than the gt: tIoU 5/7; frames 8, 9 lie outside the intersection and are not scored
    ("longer_than_gt", answer((3, 9), tube(3, 9, G)), GT_SPAN, GT_ROWS, SIZE, "paper", (1, 1, 5 / 7, 2, 0, 4 + 5 / 7)),
    # pred boxes only at 3, 4, 5: inconsistent; frames 6, 7 score the floor -2 ->
    # R_spa^p = (3 - 4) / 5 = -0.2, R_spa^t = 1
    ("missing_pred_boxes", answer((3, 7), tube(3, 5, G), tube(3, 7, G)), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 0, 1, 0.8, 0, 2.8)),
    # the pred list's only box is outside the intersection: R_spa^p = -2 (all floor)
    ("pred_box_only_outside", answer((3, 9), {9: G}, tube(3, 9, G)), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 0, 5 / 7, -1, 0, 5 / 7)),
    # a sabotaged think (one box of five): R_spa^t = (1 - 8) / 5 = -1.4, R_k = 2.4; total
    # 2.8 < 5, so with λk = 0.5 a bad think list does not pay
    ("sabotaged_think", answer((3, 7), tube(3, 7, G), {3: G}), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 0, 1, -0.4, 2.4, 2.8)),
    # pred [10,10,500,50] clips to [10,10,100,50]: IoU = GIoU = 1600/3600, L1 = 50/400
    ("pred_clipped_to_frame", answer((3, 7), tube(3, 7, [10, 10, 500, 50])), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, 2 * (4 / 9 - 0.125), 0, 3 + 2 * (4 / 9 - 0.125))),
    # a gt box past the frame edge clips to the same box as the answer: perfect
    ("gt_clipped_to_frame", answer((3, 7), tube(3, 7, [10, 10, 100, 50])), GT_SPAN,
     [[k, 10, 10, 150, 50] for k in range(3, 8)], SIZE, "paper", (1, 1, 1, 2, 0, 5)),
    # a point inside G: IoU 0, C = G so GIoU 0; L1 = 80/400 = 0.2
    ("degenerate_point", answer((3, 7), tube(3, 7, [30, 30, 30, 30])), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, -0.4, 0, 2.6)),
    # inverted corners of G: zero area, C spans G so GIoU 0; L1 = 160/400 = 0.4
    ("inverted_box", answer((3, 7), tube(3, 7, [50, 50, 10, 10])), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, -0.8, 0, 2.2)),
    # shifted box: GIoU - L1 = 1/3 - 0.1 per list
    ("shifted", answer((3, 7), tube(3, 7, SHIFT)), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, 2 * GIOU_L1_SHIFT, 0, 3 + 2 * GIOU_L1_SHIFT)),
    # 200 px wide frame: x offsets are divided by 200, L1 = (20 + 20) / 200 / 4 = 0.05
    ("anisotropic_frame", answer((3, 7), tube(3, 7, SHIFT)), GT_SPAN, GT_ROWS, [200, 100], "paper",
     (1, 1, 1, 2 * (1 / 3 - 0.05), 0, 3 + 2 * (1 / 3 - 0.05))),
    # disjoint box: GIoU - L1 = -0.609375 - 0.45 per list
    ("far_box", answer((3, 7), tube(3, 7, FAR)), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, -2.11875, 0, 0.88125)),
    # think shifted, pred perfect: R_k = 1 - (1/3 - 0.1) > 0
    ("think_reward_positive", answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT)), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, 1 + GIOU_L1_SHIFT, 1 - GIOU_L1_SHIFT, 3 + 1 + GIOU_L1_SHIFT + 0.5 * (1 - GIOU_L1_SHIFT))),
    # think better than pred: R_k clamps at 0
    ("think_better_than_pred", answer((3, 7), tube(3, 7, SHIFT), tube(3, 7, G)), GT_SPAN, GT_ROWS, SIZE, "paper",
     (1, 1, 1, 1 + GIOU_L1_SHIFT, 0, 4 + GIOU_L1_SHIFT)),
    # no think list: R_s = R_spa^p only, R_k = 0
    ("no_think_perfect", answer((3, 7), tube(3, 7, G), fmt="no_think"), GT_SPAN, GT_ROWS, SIZE, "no_think",
     (1, 1, 1, 1, 0, 4)),
    ("no_think_shifted", answer((3, 7), tube(3, 7, SHIFT), fmt="no_think"), GT_SPAN, GT_ROWS, SIZE, "no_think",
     (1, 1, 1, GIOU_L1_SHIFT, 0, 3 + GIOU_L1_SHIFT)),
    ("compact_perfect", answer((3, 7), tube(3, 7, G), fmt="compact"), GT_SPAN, GT_ROWS, SIZE, "compact",
     (1, 1, 1, 2, 0, 5)),
    # a paper-format answer scored as compact fails to parse: 0 everywhere
    ("wrong_format", PERFECT, GT_SPAN, GT_ROWS, SIZE, "compact", (0, 0, 0, 0, 0, 0)),
    # gt as a mapping with int keys, then with str keys (JSON)
    ("mapping_int_keys", PERFECT, GT_SPAN, tube(3, 7, G), SIZE, "paper", (1, 1, 1, 2, 0, 5)),
    ("mapping_str_keys", PERFECT, GT_SPAN, {str(k): G for k in range(3, 8)}, SIZE, "paper", (1, 1, 1, 2, 0, 5)),
    # an HF datasets struct column fills keys other rows have with None: they are absent frames
    ("mapping_none_values", PERFECT, GT_SPAN, {**{str(k): G for k in range(3, 8)}, "9": None}, SIZE, "paper",
     (1, 1, 1, 2, 0, 5)),
    # rows of floats, as an HF datasets list<list<float>> column returns them
    ("rows_as_floats", PERFECT, [3.0, 7.0], [[float(k), *map(float, G)] for k in range(3, 8)], SIZE, "paper",
     (1, 1, 1, 2, 0, 5)),
    # annotation gap at frame 5: excluded from sum and count, so the wrong box there is free
    ("annotation_gap", answer((3, 7), {**tube(3, 7, G), 5: FAR}), GT_SPAN, [r for r in GT_ROWS if r[0] != 5], SIZE,
     "paper", (1, 1, 1, 2, 0, 5)),
    # no gt box at all in the intersection: R_spa = 0 for both lists
    ("all_gap", PERFECT, GT_SPAN, [], SIZE, "paper", (1, 1, 1, 0, 0, 3)),
    # gt boxes outside gt_span are ignored (frame 9 would otherwise be scored)
    ("gt_box_outside_span", answer((3, 9), tube(3, 9, G)), GT_SPAN, GT_ROWS + [[9, *FAR]], SIZE, "paper",
     (1, 1, 5 / 7, 2, 0, 4 + 5 / 7)),
]


def columns(n, gt_span, gt_tube, size, fmt):
    return {"gt_span": [gt_span] * n, "gt_tube": [gt_tube] * n, "frame_size": [size] * n, "answer_format": [fmt] * n}


@pytest.mark.parametrize(
    "text, gt_span, gt_tube, size, fmt, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_reward_cases(text, gt_span, gt_tube, size, fmt, expected):
    kw = columns(1, gt_span, gt_tube, size, fmt)
    got = [f([text], **kw)[0] for f in (*DEFAULT_REWARD_FUNCS, total_reward)]
    assert got == pytest.approx(list(expected), abs=1e-9)
    scores = score_completion(text, gt_span, gt_tube, size, fmt)
    assert [scores[k] for k in COMPONENTS] == pytest.approx(list(expected), abs=1e-9)


def test_score_completion_reports_each_list():
    text = answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT))
    s = score_completion(text, GT_SPAN, GT_ROWS, SIZE)
    assert s["spa_think"] == pytest.approx(GIOU_L1_SHIFT) and s["spa_pred"] == pytest.approx(1.0)
    assert s["error"] is None
    assert score_completion("nope", GT_SPAN, GT_ROWS, SIZE)["error"] == "missing_tag"


def test_batch_mixes_rows_without_crosstalk():
    # every case in one call: the vectorised pass must keep the rows apart
    texts = [c[1] for c in CASES]
    kw = {
        "gt_span": [c[2] for c in CASES], "gt_tube": [c[3] for c in CASES],
        "frame_size": [c[4] for c in CASES], "answer_format": [c[5] for c in CASES],
    }
    for j, f in enumerate((*DEFAULT_REWARD_FUNCS, total_reward)):
        assert f(texts, **kw) == pytest.approx([c[6][j] for c in CASES], abs=1e-9), f.__name__


# (id, reward function, text, answer_format, expected)
VARIANT_CASES = [
    # overlap penalty: empty intersection scores the floor -2 per list
    ("floor_empty", make_spatial_reward(empty_overlap="floor"), answer((10, 12), tube(10, 12, G)), "paper", -4.0),
    ("floor_empty_no_think", make_spatial_reward(empty_overlap="floor"),
     answer((10, 12), tube(10, 12, G), fmt="no_think"), "no_think", -2.0),
    ("floor_empty_giou", make_spatial_reward(("giou",), "floor"), answer((10, 12), tube(10, 12, G)), "paper", -2.0),
    ("floor_empty_l1", make_spatial_reward(("l1",), "floor"), answer((10, 12), tube(10, 12, G)), "paper", -2.0),
    # the floor rule changes nothing when the spans overlap
    ("floor_overlapping", make_spatial_reward(empty_overlap="floor"), PERFECT, "paper", 2.0),
    # think reward on an empty intersection is 0
    ("think_empty", think_reward, answer((10, 12), tube(10, 12, G), tube(10, 12, FAR)), "paper", 0.0),
    # GIoU only: 1/3 per list; L1 only: -0.1 per list
    ("giou_only_shifted", make_spatial_reward(("giou",)), answer((3, 7), tube(3, 7, SHIFT)), "paper", 2 / 3),
    ("l1_only_shifted", make_spatial_reward(("l1",)), answer((3, 7), tube(3, 7, SHIFT)), "paper", -0.2),
    # missing boxes at 6, 7 score the active floor: GIoU (3 - 2) / 5 + think 1; L1 -2/5 + think 0
    ("giou_only_missing", make_spatial_reward(("giou",)), answer((3, 7), tube(3, 5, G), tube(3, 7, G)), "paper", 1.2),
    ("l1_only_missing", make_spatial_reward(("l1",)), answer((3, 7), tube(3, 5, G), tube(3, 7, G)), "paper", -0.4),
    # think with one term: 1 - 1/3 and 0 - (-0.1)
    ("think_giou", make_think_reward(("giou",)), answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT)), "paper", 2 / 3),
    ("think_l1", make_think_reward(("l1",)), answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT)), "paper", 0.1),
    # total with λk = 1: 3 + (1 + 1/3 - 0.1) + (1 - 1/3 + 0.1) = 5
    ("total_lambda_1", make_total_reward(1.0), answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT)), "paper", 5.0),
    # total with the floor rule on an empty intersection: 1 + 1 + 0 - 4
    ("total_floor_empty", make_total_reward(empty_overlap="floor"), answer((10, 12), tube(10, 12, G)), "paper", -2.0),
    # count penalty: boxes outside the claimed span join Eq. 7's mean at the floor -2
    ("extra_floor_consistent", make_spatial_reward(count_rule="extra"), PERFECT, "paper", 2.0),
    ("extra_free_two_late", spatial_reward, answer((3, 7), tube(3, 9, G), tube(3, 7, G)), "paper", 2.0),
    ("extra_floor_two_late", make_spatial_reward(count_rule="extra"), answer((3, 7), tube(3, 9, G), tube(3, 7, G)), "paper", 1 + 1 / 7),
    ("extra_floor_two_early", make_spatial_reward(count_rule="extra"), answer((3, 7), tube(1, 7, G), tube(3, 7, G)), "paper", 1 + 1 / 7),
    # one too many now costs about what one too few does: (5 - 2) / 6 vs (4 - 2) / 5
    ("extra_floor_one_long", make_spatial_reward(count_rule="extra"), answer((3, 7), tube(3, 8, G), tube(3, 7, G)), "paper", 1.5),
    ("extra_floor_one_short", make_spatial_reward(count_rule="extra"), answer((3, 7), tube(3, 6, G), tube(3, 7, G)), "paper", 1.4),
    # the rule only acts on a non-empty intersection: the paper's 0 stays
    ("extra_floor_empty", make_spatial_reward(count_rule="extra"), answer((10, 12), tube(10, 14, G)), "paper", 0.0),
    # think reward with the same rule: R_spa^p 1 - R_spa^t 1/7 (the think list has two extra boxes)
    ("think_extra_floor", make_think_reward(count_rule="extra"), answer((3, 7), tube(3, 7, G), tube(3, 9, G)), "paper", 6 / 7),
    ("think_extra_free", think_reward, answer((3, 7), tube(3, 7, G), tube(3, 9, G)), "paper", 0.0),
    # symmetric count rule: also frames of the span without a box where Eq. 7 does not look (8, 9: past the gt's end)
    ("span_floor_consistent", make_spatial_reward(count_rule="span"), PERFECT, "paper", 2.0),
    ("span_free_stops_early", spatial_reward, answer((3, 9), tube(3, 7, G), tube(3, 9, G)), "paper", 2.0),
    ("extra_floor_stops_early", make_spatial_reward(count_rule="extra"), answer((3, 9), tube(3, 7, G), tube(3, 9, G)), "paper", 2.0),
    ("span_floor_stops_early", make_spatial_reward(count_rule="span"), answer((3, 9), tube(3, 7, G), tube(3, 9, G)), "paper", 1 + 1 / 7),
    ("span_floor_two_late", make_spatial_reward(count_rule="span"), answer((3, 7), tube(3, 9, G), tube(3, 7, G)), "paper", 1 + 1 / 7),
    # a gap inside the intersection is floored once, not twice
    ("span_floor_one_short", make_spatial_reward(count_rule="span"), answer((3, 7), tube(3, 6, G), tube(3, 7, G)), "paper", 1.4),
    # union rule, vIoU's shape: per frame (GIoU - L1 + 2) / 3 in [0, 1], averaged over the spans' union (gt 3-7),
    # every frame of the union outside the intersection adding a 0
    ("union_consistent", make_spatial_reward(count_rule="union"), PERFECT, "paper", 2.0),
    ("union_shifted_boxes", make_spatial_reward(count_rule="union"), answer((3, 7), tube(3, 7, SHIFT)), "paper",
     2 * (GIOU_L1_SHIFT + 2) / 3),
    # the worst boxes still score above a rejected answer's 0: GIoU -0.609375, L1 0.45
    ("union_far_boxes", make_spatial_reward(count_rule="union"), answer((3, 7), tube(3, 7, FAR)), "paper",
     2 * (-0.609375 - 0.45 + 2) / 3),
    # span 3-9: 8, 9 outside the gt span, 5/7 per list
    ("union_span_too_long", make_spatial_reward(count_rule="union"), answer((3, 9), tube(3, 9, G)), "paper", 10 / 7),
    ("free_span_too_long", spatial_reward, answer((3, 9), tube(3, 9, G)), "paper", 2.0),
    # span 5-7: gt boxes 3, 4 outside the intersection, 3/5 per list
    ("union_starts_late", make_spatial_reward(count_rule="union"), answer((5, 7), tube(5, 7, G)), "paper", 1.2),
    ("span_floor_starts_late", make_spatial_reward(count_rule="span"), answer((5, 7), tube(5, 7, G)), "paper", 2.0),
    # span 1-5: 1, 2 and the gt's 6, 7 outside the intersection 3-5: 3/7 per list
    ("union_shifted_span", make_spatial_reward(count_rule="union"), answer((1, 5), tube(1, 5, G)), "paper", 6 / 7),
    # count misses: one box short 4/5 + think 1; two boxes past the span 5/7 + think 1
    ("union_one_short", make_spatial_reward(count_rule="union"), answer((3, 7), tube(3, 6, G), tube(3, 7, G)), "paper", 1.8),
    ("union_two_late", make_spatial_reward(count_rule="union"), answer((3, 7), tube(3, 9, G), tube(3, 7, G)), "paper", 12 / 7),
    # an empty intersection scores 0, as vIoU does
    ("union_empty", make_spatial_reward(count_rule="union"), answer((10, 12), tube(10, 12, G)), "paper", 0.0),
    # think: R_spa^p 1 - R_spa^t 5/7 (its list has two boxes past the span)
    ("think_union", make_think_reward(count_rule="union"), answer((3, 7), tube(3, 7, G), tube(3, 9, G)), "paper", 2 / 7),
    # viou_metric: per-frame IoU over the union, i.e. vIoU. SHIFT has IoU 1/3; FAR 0 (a poor box earns nothing)
    ("viou_consistent", make_spatial_reward(("iou",), count_rule="union"), PERFECT, "paper", 2.0),
    ("viou_shifted_boxes", make_spatial_reward(("iou",), count_rule="union"), answer((3, 7), tube(3, 7, SHIFT)), "paper", 2 / 3),
    ("viou_far_boxes", make_spatial_reward(("iou",), count_rule="union"), answer((3, 7), tube(3, 7, FAR)), "paper", 0.0),
    # span 3-9: 5 of 7 union frames with IoU 1, per list
    ("viou_span_too_long", make_spatial_reward(("iou",), count_rule="union"), answer((3, 9), tube(3, 9, G)), "paper", 10 / 7),
    # pred one box short (4/5), think exact (1)
    ("viou_one_short", make_spatial_reward(("iou",), count_rule="union"), answer((3, 7), tube(3, 6, G), tube(3, 7, G)), "paper", 1.8),
    # think: 1 - 1/3
    ("think_viou", make_think_reward(("iou",), count_rule="union"), answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT)), "paper", 2 / 3),
    # viou_giou: per frame (GIoU + IoU + 1) / 3 over the union. SHIFT: (1/3 + 1/3 + 1) / 3 = 5/9 per list;
    # FAR misses but still earns (1 - 0.609375) / 3 per list, more than the 0 of no box
    # iou_intersection: per-frame IoU over the intersection, extra boxes at 0. Unlike viou_*, the span's length
    # is left to the temporal reward: a span too long or starting late with exact boxes keeps 1 per list
    ("iou_inter_consistent", make_spatial_reward(("iou",), count_rule="extra"), PERFECT, "paper", 2.0),
    ("iou_inter_shifted_boxes", make_spatial_reward(("iou",), count_rule="extra"), answer((3, 7), tube(3, 7, SHIFT)), "paper", 2 / 3),
    ("iou_inter_span_too_long", make_spatial_reward(("iou",), count_rule="extra"), answer((3, 9), tube(3, 9, G)), "paper", 2.0),
    ("iou_inter_starts_late", make_spatial_reward(("iou",), count_rule="extra"), answer((5, 7), tube(5, 7, G)), "paper", 2.0),
    # pred one box short (frame 7 of the intersection scores 0: 4/5), think exact; two boxes past the span (5/7)
    ("iou_inter_one_short", make_spatial_reward(("iou",), count_rule="extra"), answer((3, 7), tube(3, 6, G), tube(3, 7, G)), "paper", 1.8),
    ("iou_inter_two_late", make_spatial_reward(("iou",), count_rule="extra"), answer((3, 7), tube(3, 9, G), tube(3, 7, G)), "paper", 12 / 7),
    ("iou_inter_empty", make_spatial_reward(("iou",), count_rule="extra"), answer((10, 12), tube(10, 12, G)), "paper", 0.0),
    ("viou_giou_consistent", make_spatial_reward(("giou", "iou"), count_rule="union"), PERFECT, "paper", 2.0),
    ("viou_giou_shifted_boxes", make_spatial_reward(("iou", "giou"), count_rule="union"), answer((3, 7), tube(3, 7, SHIFT)), "paper", 10 / 9),
    ("viou_giou_far_boxes", make_spatial_reward(("giou", "iou"), count_rule="union"), answer((3, 7), tube(3, 7, FAR)), "paper", 0.390625 * 2 / 3),
    ("viou_giou_span_too_long", make_spatial_reward(("giou", "iou"), count_rule="union"), answer((3, 9), tube(3, 9, G)), "paper", 10 / 7),
    ("think_viou_giou", make_think_reward(("giou", "iou"), count_rule="union"), answer((3, 7), tube(3, 7, G), tube(3, 7, SHIFT)), "paper", 4 / 9),
    # the intersection rule with IoU: Eq. 7's mean of IoU; a span too long costs nothing there
    ("iou_free_span_too_long", make_spatial_reward(("iou",)), answer((3, 9), tube(3, 9, G)), "paper", 2.0),
    # centre_hit: 1 per frame whose box centre lies in G, over the intersection. SHIFT's centre (50, 30) lies on G's
    # right edge: a hit however poor the overlap (IoU 1/3); FAR's (75, 75) misses; a box 2.25 times G's area about its centre hits
    ("centre_consistent", make_spatial_reward(("centre",)), PERFECT, "paper", 2.0),
    ("centre_shifted_boxes", make_spatial_reward(("centre",)), answer((3, 7), tube(3, 7, SHIFT)), "paper", 2.0),
    ("centre_far_boxes", make_spatial_reward(("centre",)), answer((3, 7), tube(3, 7, FAR)), "paper", 0.0),
    ("centre_grown_boxes", make_spatial_reward(("centre",)), answer((3, 7), tube(3, 7, [0, 0, 60, 60])), "paper", 2.0),
    # pred: 2 of 5 frames hit; think all; a span too long costs nothing (Eq. 7's intersection); empty intersection 0
    ("centre_two_of_five", make_spatial_reward(("centre",)), answer((3, 7), {**tube(3, 4, G), **tube(5, 7, FAR)}, tube(3, 7, G)), "paper", 1.4),
    ("centre_span_too_long", make_spatial_reward(("centre",)), answer((3, 9), tube(3, 9, G)), "paper", 2.0),
    ("centre_empty", make_spatial_reward(("centre",)), answer((10, 12), tube(10, 12, G)), "paper", 0.0),
    # think: R_spa^p 1 - R_spa^t 0
    ("think_centre", make_think_reward(("centre",)), answer((3, 7), tube(3, 7, G), tube(3, 7, FAR)), "paper", 1.0),
    # total: R_f 1 + R_c 0 + R_t 1 + R_s (1 + 1/7) + 0.5 * R_k 0
    ("total_extra_floor", make_total_reward(count_rule="extra"), answer((3, 7), tube(3, 9, G), tube(3, 7, G)), "paper", 3 + 1 / 7),
]


@pytest.mark.parametrize("func, text, fmt, expected", [c[1:] for c in VARIANT_CASES], ids=[c[0] for c in VARIANT_CASES])
def test_variant_cases(func, text, fmt, expected):
    assert func([text], **columns(1, GT_SPAN, GT_ROWS, SIZE, fmt)) == pytest.approx([expected], abs=1e-9)


def test_the_union_rule_refuses_the_floor_on_an_empty_intersection():
    # vIoU scores an empty intersection 0; a floor there would put a parsed answer below a rejected one
    with pytest.raises(ValueError, match="empty_overlap='zero'"):
        make_spatial_reward(empty_overlap="floor", count_rule="union")
    with pytest.raises(ValueError, match="empty_overlap='zero'"):
        make_total_reward(empty_overlap="floor", count_rule="union")


@pytest.mark.parametrize(
    "func, name",
    [
        (spatial_reward, "spatial_reward"),
        (think_reward, "think_reward"),
        (total_reward, "total_reward"),
        (make_spatial_reward(("giou",)), "spatial_reward_giou"),
        (make_spatial_reward(["l1"], "floor"), "spatial_reward_l1_overlap_floor"),
        # terms come back in canonical order, so both spellings name the default
        (make_spatial_reward(("l1", "giou")), "spatial_reward"),
        (make_think_reward("l1"), "think_reward_l1"),
        (make_total_reward(0.2), "total_reward_lambda0.2"),
        (make_spatial_reward(count_rule="extra"), "spatial_reward_extra_floor"),
        (make_spatial_reward(("giou",), "floor", "extra"), "spatial_reward_giou_overlap_floor_extra_floor"),
        (make_think_reward(count_rule="extra"), "think_reward_extra_floor"),
        (make_total_reward(count_rule="extra"), "total_reward_extra_floor"),
        (make_spatial_reward(count_rule="span"), "spatial_reward_count_floor"),
        (make_think_reward(count_rule="span"), "think_reward_count_floor"),
        (make_spatial_reward(count_rule="union"), "spatial_reward_union"),
        (make_think_reward(count_rule="union"), "think_reward_union"),
        (make_spatial_reward(("iou",), count_rule="union"), "spatial_reward_iou_union"),
        (make_think_reward(("iou",), count_rule="union"), "think_reward_iou_union"),
    ],
)
def test_factory_names(func, name):
    assert func.__name__ == name
    assert pickle.loads(pickle.dumps(func)).__name__ == name  # picklable, unlike a closure


def test_registry_keys_are_the_names():
    assert all(name == f.__name__ for name, f in REWARDS.items())
    assert set(REWARDS) == set(REWARD_BOUNDS)


# hand-derived ranges (module docstring): per frame GIoU - L1 ∈ [-2, 1], two lists
EXPECTED_BOUNDS = {
    "format_reward": (0, 1),
    "consistency_reward": (0, 1),
    "temporal_reward": (0, 1),
    "spatial_reward": (-4, 2),
    "think_reward": (0, 3),
    "spatial_reward_giou": (-2, 2),
    "spatial_reward_l1": (-2, 0),
    "spatial_reward_overlap_floor": (-4, 2),
    "spatial_reward_extra_floor": (-4, 2),  # extra boxes score the floor: the mean stays in [-2, 1]
    "spatial_reward_count_floor": (-4, 2),
    "spatial_reward_union": (0, 2),
    "think_reward_giou": (0, 2),
    "think_reward_l1": (0, 1),
    "think_reward_extra_floor": (0, 3),
    "think_reward_count_floor": (0, 3),
    "think_reward_union": (0, 1),
    "spatial_reward_iou_union": (0, 2),  # vIoU per list
    "think_reward_iou_union": (0, 1),
    "spatial_reward_giou_iou_union": (0, 2),  # rescaled to [0, 1] per frame, as every union rule
    "think_reward_giou_iou_union": (0, 1),
    "spatial_reward_centre": (0, 2),  # a frame is a hit (1) or not (0), per list
    "think_reward_centre": (0, 1),
    # parsed: R >= 1 + (-4); top: R_s and R_k cannot both be high for λk <= 1
    "total_reward": (-3, 5),
}


def test_reward_bounds_literally():
    assert REWARD_BOUNDS == EXPECTED_BOUNDS


@pytest.mark.parametrize(
    "terms, lam, bounds",
    [
        (("giou", "l1"), 1.0, (-3, 5)),  # neutral think: still 5
        # λk = 2 pays a bad think: R_spa^t = -2, R_spa^p = 1 -> R_s = -1, λk R_k = 6
        (("giou", "l1"), 2.0, (-3, 8)),
        # L1 only: parsed R >= 1 - 2 = -1; best is 3 + 0
        (("l1",), 0.5, (-1, 3)),
        (("giou",), 0.0, (-1, 5)),
    ],
)
def test_total_bounds(terms, lam, bounds):
    assert total_bounds(terms, lam) == bounds


def test_union_bounds_are_viou_shaped():
    # per frame in [0, 1]: R_s in [0, 2], R_k in [0, 1], and no total below a rejected answer's 0
    assert spatial_bounds(count_rule="union") == (0, 2) and think_bounds(count_rule="union") == (0, 1)
    assert total_bounds(lambda_k=0.5, count_rule="union") == (0, 5)
    assert make_total_reward(count_rule="union").bounds == (0, 5)


def test_frame_bounds():
    assert frame_bounds() == (-2, 1) and frame_bounds(("giou",)) == (-1, 1) and frame_bounds(("l1",)) == (-1, 0)
    assert frame_bounds(("iou",)) == (0, 1) and frame_bounds(("iou", "giou")) == (-1, 2) and frame_bounds(("centre",)) == (0, 1)


@pytest.mark.parametrize("terms", [("l1", "iou"), ("giou", "l1", "iou"), ("iou", "iou"), ("ciou",), (), ("centre", "giou"), ("iou", "centre")])
def test_iou_takes_giou_only_and_unknown_terms_are_refused(terms):
    with pytest.raises(ValueError, match="terms"):
        make_spatial_reward(terms)


def test_viou_metric_reward_is_the_evaluators_viou():
    # consistent answers (boxes exactly on the claimed span) on a gap-free gt: R_spa^p equals
    # stvg_lab.metrics' vIoU of the same tube, frame for frame (think list = pred list, so R_s = 2 vIoU)
    rng = np.random.default_rng(0)
    reward = make_spatial_reward(("iou",), count_rule="union")
    for trial in range(200):
        gs = int(rng.integers(0, 12)); ge = gs + int(rng.integers(0, 8))
        ps = int(rng.integers(0, 16)); pe = ps + int(rng.integers(0, 8))
        gt = {k: sorted_box(rng) for k in range(gs, ge + 1)}
        pred = {k: sorted_box(rng) for k in range(ps, pe + 1)}
        got = reward([answer((ps, pe), pred)], **columns(1, [gs, ge], [[k, *b] for k, b in gt.items()], SIZE, "paper"))[0]
        want = evaluate({"s": pred}, {"s": gt})["m_vIoU"]
        assert got == pytest.approx(2 * want, abs=1e-6), (trial, gs, ge, ps, pe)


def sorted_box(rng):
    x = np.sort(rng.integers(0, 100, 2)); y = np.sort(rng.integers(0, 100, 2))
    return [float(x[0]), float(y[0]), float(x[1] + 1), float(y[1] + 1)]  # integer corners: the answer's text is exact


def names(funcs):
    return [f.__name__ for f in funcs]


DEFAULT_NAMES = ["format_reward", "consistency_reward", "temporal_reward", "spatial_reward", "think_reward"]
SETUP_CASES = [
    # (variant, λk, names, weights)
    ("full", 0.5, DEFAULT_NAMES, [1, 1, 1, 1, 0.5]),
    ("full", 0.2, DEFAULT_NAMES, [1, 1, 1, 1, 0.2]),  # Table 8
    ("no_think_reward", 0.5, DEFAULT_NAMES, [1, 1, 1, 1, 0]),  # kept and logged, weight 0
    ("giou_only", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_giou", "think_reward_giou"], [1, 1, 1, 1, 0.5]),
    ("l1_only", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_l1", "think_reward_l1"], [1, 1, 1, 1, 0.5]),
    ("overlap_penalty", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_overlap_floor", "think_reward"], [1, 1, 1, 1, 0.5]),
    ("no_think_bbox", 0.5, DEFAULT_NAMES, [1, 1, 1, 1, 0.5]),  # the answer_format column does the work
    ("count_penalty", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_extra_floor", "think_reward_extra_floor"], [1, 1, 1, 1, 0.5]),
    ("count_symmetric", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_count_floor", "think_reward_count_floor"], [1, 1, 1, 1, 0.5]),
    ("union_spatial", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_union", "think_reward_union"], [1, 1, 1, 1, 0.5]),
    ("viou_metric", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_iou_union", "think_reward_iou_union"], [1, 1, 1, 1, 0.5]),
    ("viou_giou", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_giou_iou_union", "think_reward_giou_iou_union"], [1, 1, 1, 1, 0.5]),
    ("iou_intersection", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_iou_extra_floor", "think_reward_iou_extra_floor"], [1, 1, 1, 1, 0.5]),
    ("centre_hit", 0.5, DEFAULT_NAMES[:3] + ["spatial_reward_centre", "think_reward_centre"], [1, 1, 1, 1, 0.5]),
]


@pytest.mark.parametrize("variant, lam, expected_names, weights", SETUP_CASES)
def test_reward_setup(variant, lam, expected_names, weights):
    funcs, w = reward_setup(variant, lam)
    assert names(funcs) == expected_names and w == weights


SCALE_CASES = [
    # (variant, λk, scale, weights): factors multiply the variant's weights, named terms only
    ("full", 0.5, None, [1, 1, 1, 1, 0.5]),
    ("full", 0.5, {}, [1, 1, 1, 1, 0.5]),
    ("full", 0.5, {"format": 3}, [3, 1, 1, 1, 0.5]),
    ("full", 0.2, {"spatial": 2, "think": 2}, [1, 1, 1, 2, 0.4]),
    ("no_think_reward", 0.5, {"think": 4, "temporal": 0}, [1, 1, 0, 1, 0]),
    ("count_symmetric", 0.5, {"consistency": 0.5}, [1, 0.5, 1, 1, 0.5]),
]


@pytest.mark.parametrize("variant, lam, scale, weights", SCALE_CASES)
def test_reward_setup_scale(variant, lam, scale, weights):
    assert reward_setup(variant, lam, scale)[1] == weights


@pytest.mark.parametrize("scale, message", [
    ({"fmt": 2}, "unknown term 'fmt'"),
    ({"format": -1}, "'format' must be a number >= 0, got -1"),
    ({"spatial": "2"}, "'spatial' must be a number >= 0, got '2'"),
    ({"think": True}, "'think' must be a number >= 0, got True"),
    ({"format": float("nan")}, "'format' must be a number >= 0, got nan"),
])
def test_reward_scale_rejects(scale, message):
    with pytest.raises(ValueError, match=message):
        reward_setup("full", 0.5, scale)


def test_reward_setup_covers_every_variant_and_rejects_others():
    assert {c[0] for c in SETUP_CASES} == set(VARIANTS)
    with pytest.raises(ValueError, match="giou_only"):
        reward_setup("iou_only")
    with pytest.raises(ValueError, match="lambda_k"):
        reward_setup("full", -1)
    assert reward_weights() == [1, 1, 1, 1, 0.5]


@pytest.mark.parametrize(
    "completion",
    [
        [{"role": "assistant", "content": PERFECT}],  # TRL conversational completion
        [{"content": PERFECT}],  # TRL's own examples leave the role out
        # the last assistant message counts; text parts are joined, other parts skipped
        [
            {"role": "user", "content": "where is the man?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": PERFECT[:40]}, {"type": "image"}, {"type": "text", "text": PERFECT[40:]},
            ]},
        ],
    ],
    ids=["assistant", "no_role", "parts"],
)
def test_chat_completions(completion):
    assert total_reward([completion], **columns(1, GT_SPAN, GT_ROWS, SIZE, "paper")) == [5.0]


def test_chat_completion_without_text_scores_zero_and_without_assistant_raises():
    kw = columns(1, GT_SPAN, GT_ROWS, SIZE, "paper")
    assert total_reward([[{"role": "assistant", "content": None}]], **kw) == [0.0]
    with pytest.raises(ValueError, match="completion 0"):
        total_reward([[{"role": "user", "content": PERFECT}]], **kw)


MALFORMED = [
    "",
    "I think the man appears in frames 3 to 7.",
    PERFECT + " Done.",  # trailing text
    "Sure! " + PERFECT,  # preamble
    PERFECT.replace("</pred_bbox>", ""),  # unclosed
    PERFECT + "<time> 3 - 7 </time>",  # repeated tag
    PERFECT.replace("3 - 7", "7 - 3"),  # reversed span
    PERFECT.replace("3 - 7", "3"),  # bad span
    PERFECT.replace("[10,10,50,50] </pred_bbox>", "[10,10,50] </pred_bbox>"),  # 3 coordinates
    PERFECT.replace("7. [10,10,50,50] </pred_bbox>", "7. [10,10,50,50], 7. [1,1,5,5] </pred_bbox>"),  # duplicate
    PERFECT.replace("7. [10,10,50,50] </pred_bbox>", "7. [10,10,50,50], </pred_bbox>"),  # trailing comma
    "<time> 3 - 7 </time> <pred_bbox> 3. [10,10,50,50] </pred_bbox>",  # no think in the paper format
    "x" * 30_000,  # too long
]


@pytest.mark.parametrize("text", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_scores_zero_everywhere(text):
    assert not parse_answer(text).ok
    kw = columns(1, GT_SPAN, GT_ROWS, SIZE, "paper")
    for name, f in REWARDS.items():
        assert f([text], **kw) == [0.0], name
    assert make_total_reward(2.0, ("l1",), "floor")([text], **kw) == [0.0]


def test_format_and_consistency_need_no_ground_truth():
    assert format_reward([PERFECT, "x"]) == [1.0, 0.0]
    assert consistency_reward([PERFECT], prompts=["p"], completion_ids=[[1]], trainer_state=None) == [1.0]


@pytest.mark.parametrize(
    "func, missing",
    [
        (temporal_reward, "gt_span"),
        (spatial_reward, "gt_tube"),
        (think_reward, "frame_size"),
        (total_reward, "gt_span"),
    ],
)
def test_missing_column_raises_keyerror(func, missing):
    kw = columns(1, GT_SPAN, GT_ROWS, SIZE, "paper")
    del kw[missing]
    with pytest.raises(KeyError, match=missing):
        func([PERFECT], **kw)


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("gt_span", [5, 3], "row 0: column 'gt_span'"),  # reversed
        ("gt_span", [-1, 3], "gt_span"),  # negative
        ("gt_span", [1.5, 3], "gt_span"),  # not an integer
        ("gt_span", "3-7", "gt_span"),  # not a pair
        ("frame_size", [0, 100], "frame_size"),  # zero width
        ("frame_size", [100], "frame_size"),  # one number
        ("gt_tube", [[3, 1, 2, 3]], "gt_tube"),  # a row with three coordinates
        ("gt_tube", [[3, 1, 2, 3, 4], [3, 1, 2, 3, 4]], "frame twice"),
        ("gt_tube", [[3, 1, 2, float("nan"), 4]], "finite"),
        ("gt_tube", None, "gt_tube"),
        ("gt_tube", {"a": G}, "gt_tube"),  # a key that is no frame index
    ],
)
def test_malformed_column_raises_valueerror(column, value, match):
    kw = columns(1, GT_SPAN, GT_ROWS, SIZE, "paper")
    kw[column] = [value]
    with pytest.raises(ValueError, match=match):
        total_reward([PERFECT], **kw)


def test_column_length_and_format_name_are_checked():
    kw = columns(2, GT_SPAN, GT_ROWS, SIZE, "paper")
    with pytest.raises(ValueError, match="2 entries for 1 completions"):
        spatial_reward([PERFECT], **kw)
    kw = columns(1, GT_SPAN, GT_ROWS, SIZE, "verbose")
    with pytest.raises(ValueError, match="unknown answer format"):
        format_reward([PERFECT], **kw)
    # a single format name for the whole batch is accepted too
    assert format_reward([PERFECT], answer_format="paper") == [1.0]


PIECES = [
    "<time>", "</time>", "<think_bbox>", "</think_bbox>", "<pred_bbox>", "</pred_bbox>",
    " ", "-", ",", ".", "[", "]", "0", "3", "5", "7", "12", "99999", "1.5", "4. ", "[10,10,50,50]", "x",
]
grammar_text = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


@st.composite
def mutated_answers(draw, fmt):
    """A valid answer of ``fmt`` near the gt, then maybe cut, spliced or duplicated."""
    s = draw(st.integers(0, 14))
    e = draw(st.integers(s, s + 8))
    box = st.lists(st.integers(0, 600), min_size=4, max_size=4)
    frames = range(s, e + 1) if not get_format(fmt).frame_labels else draw(
        st.lists(st.integers(s - 2, e + 2), min_size=1, max_size=12, unique=True)
    )
    pred = {k: draw(box) for k in frames}
    think = {k: draw(box) for k in frames}
    text = format_answer((s, e), pred, think, fmt)
    op = draw(st.sampled_from(["none", "delete", "insert", "duplicate"]))
    i = draw(st.integers(0, len(text)))
    j = draw(st.integers(i, len(text)))
    if op == "delete":
        text = text[:i] + text[j:]
    elif op == "insert":
        text = text[:i] + draw(st.sampled_from(PIECES)) + text[i:]
    elif op == "duplicate":
        text = text[:j] + text[i:j] + text[j:]
    return text


@st.composite
def cases(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    # mutated answers twice as often: they reach the spatial code, arbitrary text mostly does not
    text = draw(st.one_of(st.text(max_size=200), grammar_text, mutated_answers(fmt), mutated_answers(fmt)))
    s = draw(st.integers(0, 16))
    e = draw(st.integers(s, s + 8))
    coord = st.floats(-100, 800, allow_nan=False)
    rows = [[k, *draw(st.lists(coord, min_size=4, max_size=4))] for k in range(s, e + 1) if draw(st.booleans())]
    gt_tube = rows if draw(st.booleans()) else {str(r[0]): r[1:] for r in rows}
    size = [draw(st.integers(1, 400)), draw(st.integers(1, 400))]
    return text, [s, e], gt_tube, size, fmt


EXTRA_VARIANTS = [make_total_reward(2.0, ("l1",), "floor"), make_spatial_reward(("giou",), "floor"), make_total_reward(count_rule="extra"),
                  make_spatial_reward(("l1",), count_rule="extra"), make_total_reward(count_rule="span")]


def check_bounded(case):
    text, gt_span, gt_tube, size, fmt = case
    kw = columns(1, gt_span, gt_tube, size, fmt)
    ok = parse_answer(text, fmt).ok
    for f in (*REWARDS.values(), *EXTRA_VARIANTS):
        (value,) = f([text], **kw)
        lo, hi = REWARD_BOUNDS.get(f.__name__) or f.bounds
        assert math.isfinite(value) and lo - 1e-9 <= value <= hi + 1e-9, (f.__name__, value)
        assert ok or value == 0.0, f.__name__


@given(cases())
def test_rewards_never_raise_and_stay_bounded(case):
    check_bounded(case)


@given(cases())
def test_score_completion_matches_reward_functions(case):
    text, gt_span, gt_tube, size, fmt = case
    scores = score_completion(text, gt_span, gt_tube, size, fmt)
    kw = columns(1, gt_span, gt_tube, size, fmt)
    funcs = (*DEFAULT_REWARD_FUNCS, total_reward)
    assert [scores[k] for k in COMPONENTS] == [f([text], **kw)[0] for f in funcs]


@given(st.lists(cases(), min_size=1, max_size=6))
def test_batch_equals_one_by_one(batch):
    kw = {
        "gt_span": [c[1] for c in batch], "gt_tube": [c[2] for c in batch],
        "frame_size": [c[3] for c in batch], "answer_format": [c[4] for c in batch],
    }
    texts = [c[0] for c in batch]
    for f in (*DEFAULT_REWARD_FUNCS, total_reward):
        assert f(texts, **kw) == [f([c[0]], **columns(1, *c[1:]))[0] for c in batch], f.__name__


@pytest.mark.slow
@settings(max_examples=10_000)
@given(cases())
def test_rewards_bounded_many_examples(case):
    check_bounded(case)


@pytest.mark.parametrize("make", [lambda: make_spatial_reward(count_rule="none"), lambda: make_think_reward(count_rule=""),
                                  lambda: make_total_reward(count_rule="floor")])
def test_count_rule_rule_is_checked(make):
    with pytest.raises(ValueError, match="count_rule must be one of"):
        make()
