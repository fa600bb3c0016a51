"""stvg_lab.geometry: literal, hand-computed cases for every function, and finiteness properties.

Inputs must be finite. A coordinate of ``inf`` gives ``inf - inf = NaN`` in areas, and no
caller can produce one (answers are parsed from decimal integers, and annotations are
pixels), so the property tests draw finite floats in ``±1e6``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stvg_lab.geometry import (
    as_boxes,
    box_area,
    box_giou,
    box_iou,
    box_l1,
    centre_inside,
    clip_boxes,
    span_intersection,
    span_length,
    temporal_iou,
    temporal_iou_many,
    xywh_to_xyxy,
)

U = [0, 0, 1, 1]  # unit square

# (name, a, b, IoU, GIoU) for single boxes; C is the smallest box enclosing both
PAIR_CASES = [
    # identical boxes
    ("identical", [0, 0, 2, 2], [0, 0, 2, 2], 1.0, 1.0),
    # nested: 2x2 inside 4x4, IoU 4/16; C is the outer box, so GIoU = IoU
    ("nested", [0, 0, 4, 4], [1, 1, 3, 3], 0.25, 0.25),
    # half overlap along x: inter 1x2 = 2, union 4 + 4 - 2 = 6; C = 3x2 = 6
    ("half_overlap", [0, 0, 2, 2], [1, 0, 3, 2], 2 / 6, 2 / 6),
    # diagonal overlap: inter 1, union 7, C = 3x3 = 9 -> 1/7 - (9 - 7)/9
    ("diagonal", [0, 0, 2, 2], [1, 1, 3, 3], 1 / 7, 1 / 7 - 2 / 9),
    # touching edges (share x = 1): no area in common; C = 2x1 = union, so GIoU 0
    ("touching_edge", U, [1, 0, 2, 1], 0.0, 0.0),
    # touching corners only: C = 2x2 = 4, union 2 -> GIoU = -(4 - 2)/4
    ("touching_corner", U, [1, 1, 2, 2], 0.0, -0.5),
    # disjoint with a gap: C = 3x1 = 3, union 2 -> -1/3
    ("disjoint_gap", U, [2, 0, 3, 1], 0.0, -1 / 3),
    # zero-area box (a point) inside a box: IoU 0; C is the big box = union, GIoU 0
    ("point_inside", [1, 1, 1, 1], [0, 0, 2, 2], 0.0, 0.0),
    # two identical points: union and C both empty -> 0 everywhere, not NaN
    ("two_points", [1, 1, 1, 1], [1, 1, 1, 1], 0.0, 0.0),
    # two zero-area segments on the same line: C has zero area, penalty taken as 0
    ("collinear_segments", [0, 0, 0, 1], [0, 2, 0, 3], 0.0, 0.0),
    # inverted box (x2 < x1, y2 < y1) has area 0; its corners still span C = [0,0,2,2] = B
    ("inverted", [2, 2, 0, 0], [0, 0, 2, 2], 0.0, 0.0),
    # C is spanned by the smallest x1/y1 and the largest x2/y2. Here the inverted box's
    # x1 = y1 = -1 lie outside B: C = [-1, -1, 2, 2] = 9, union = 4 -> -5/9
    ("inverted_widens_C", [-1, -1, -3, -3], [0, 0, 2, 2], 0.0, -5 / 9),
    # non-square, fractional coordinates: inter 0.5x1 = 0.5, union 1 + 1.5 - 0.5 = 2;
    # C = [0, 0, 1.5, 1.5] = 2.25 -> 0.25 - 0.25/2.25
    ("fractional", [0, 0, 1, 1], [0.5, 0, 1.5, 1.5], 0.25, 0.25 - 0.25 / 2.25),
]


@pytest.mark.parametrize("name,a,b,iou,giou", PAIR_CASES, ids=[c[0] for c in PAIR_CASES])
def test_iou_and_giou_pairs(name, a, b, iou, giou):
    assert float(box_iou(a, b)) == pytest.approx(iou, abs=1e-12)
    assert float(box_giou(a, b)) == pytest.approx(giou, abs=1e-12)
    # both are symmetric
    assert float(box_iou(b, a)) == pytest.approx(iou, abs=1e-12)
    assert float(box_giou(b, a)) == pytest.approx(giou, abs=1e-12)


def test_giou_tends_to_minus_one_far_apart():
    # unit squares a million pixels apart: C ~ 1e12, union 2 -> GIoU = -1 + 2e-12
    g = float(box_giou(U, [1e6 - 1, 1e6 - 1, 1e6, 1e6]))
    assert g == pytest.approx(-1 + 2 / (1e6 * 1e6), abs=1e-15)
    assert -1.0 <= g < -0.999999


# (name, a shape, b shape, result shape): numpy broadcasting over leading dimensions
BROADCAST_CASES = [
    # one box against many
    ("one_vs_many", (4,), (5, 4), (5,)),
    # pairwise matrix by adding axes: (3, 1, 4) vs (1, 2, 4)
    ("pairwise", (3, 1, 4), (1, 2, 4), (3, 2)),
    # batch of frames x candidates
    ("batched", (2, 3, 4), (2, 3, 4), (2, 3)),
]


@pytest.mark.parametrize("name,sa,sb,sout", BROADCAST_CASES, ids=[c[0] for c in BROADCAST_CASES])
def test_broadcasting_shapes(name, sa, sb, sout):
    a = np.broadcast_to(np.array([0.0, 0, 2, 2]), sa)
    b = np.broadcast_to(np.array([1.0, 0, 3, 2]), sb)
    for fn in (box_iou, box_giou, box_l1):
        out = fn(a, b)
        assert out.shape == sout
    assert np.allclose(box_iou(a, b), 2 / 6)


def test_pairwise_matrix_values():
    a = np.array([[0, 0, 2, 2], [10, 10, 12, 12]], dtype=float)[:, None]  # (2, 1, 4)
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [10, 10, 12, 12]], dtype=float)[None]  # (1, 3, 4)
    # row 0 = first box vs all three, row 1 = far box vs all three
    assert box_iou(a, b).tolist() == pytest.approx(np.array([[1, 1 / 3, 0], [0, 0, 1]]))


# (name, a, b, width, height, expected mean |diff| with x / width and y / height)
L1_CASES = [
    # identical boxes
    ("identical", [1, 2, 3, 4], [1, 2, 3, 4], 10, 10, 0.0),
    # shifted right by 10 in a 100x50 frame: (0.1 + 0 + 0.1 + 0) / 4
    ("shift_x", [0, 0, 10, 10], [10, 0, 20, 10], 100, 50, 0.05),
    # shifted down by 10 in a 100x50 frame: (0 + 0.2 + 0 + 0.2) / 4
    ("shift_y", [0, 0, 10, 10], [0, 10, 10, 20], 100, 50, 0.1),
    # opposite corners of the frame: every normalised coordinate differs by 1
    ("full_frame_apart", [0, 0, 0, 0], [640, 360, 640, 360], 640, 360, 1.0),
    # default width = height = 1 gives raw pixel L1: (1 + 2 + 3 + 4) / 4
    ("unnormalised", [0, 0, 0, 0], [1, 2, 3, 4], 1, 1, 2.5),
    # inverted boxes are compared coordinate by coordinate, not by area
    ("inverted", [2, 2, 0, 0], [0, 0, 2, 2], 4, 4, 0.5),
]


@pytest.mark.parametrize("name,a,b,w,h,expected", L1_CASES, ids=[c[0] for c in L1_CASES])
def test_box_l1(name, a, b, w, h, expected):
    assert float(box_l1(a, b, w, h)) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("w,h", [(0, 10), (10, 0), (-5, 10)])
def test_box_l1_rejects_empty_frame(w, h):
    # a zero-size frame would divide by zero
    with pytest.raises(ValueError, match="width and height"):
        box_l1(U, U, w, h)


# (name, boxes, expected area)
AREA_CASES = [
    # ordinary 3x2 box
    ("normal", [1, 1, 4, 3], 6.0),
    # zero width
    ("zero_width", [1, 1, 1, 3], 0.0),
    # inverted in x: clipped to 0, not negative
    ("inverted_x", [4, 1, 1, 3], 0.0),
    # inverted in both: (-3) * (-2) would be +6 without the clip
    ("inverted_both", [4, 3, 1, 1], 0.0),
    # negative coordinates are fine
    ("negative_coords", [-2, -2, 0, 0], 4.0),
]


@pytest.mark.parametrize("name,box,expected", AREA_CASES, ids=[c[0] for c in AREA_CASES])
def test_box_area(name, box, expected):
    assert float(box_area(box)) == expected


def test_box_area_shape():
    assert box_area(np.zeros((2, 3, 4))).shape == (2, 3)


# (name, a, b, expected): is the centre of a inside b (edges included)?
CENTRE_CASES = [
    ("same", [10, 10, 50, 50], [10, 10, 50, 50], 1.0),
    ("shifted_onto_edge", [30, 10, 70, 50], [10, 10, 50, 50], 1.0),   # centre (50, 30) on b's right edge
    ("shifted_past_edge", [31, 10, 71, 50], [10, 10, 50, 50], 0.0),   # centre (51, 30)
    ("huge_about_b", [-100, -100, 160, 160], [10, 10, 50, 50], 1.0),  # size is not scored
    ("small_inside", [20, 20, 22, 22], [10, 10, 50, 50], 1.0),
    ("disjoint", [60, 60, 90, 90], [10, 10, 50, 50], 0.0),
    ("b_degenerate_point", [0, 0, 10, 10], [5, 5, 5, 5], 1.0),          # only the point (5, 5) is in b
    ("b_inverted", [0, 0, 10, 10], [10, 10, 0, 0], 0.0),                # x2 < x1 holds no point
]


@pytest.mark.parametrize("name,a,b,expected", CENTRE_CASES, ids=[c[0] for c in CENTRE_CASES])
def test_centre_inside(name, a, b, expected):
    assert centre_inside(a, b) == expected


def test_centre_inside_broadcasts():
    out = centre_inside(np.array([[10, 10, 50, 50], [60, 60, 90, 90]]), [10, 10, 50, 50])
    assert out.tolist() == [1.0, 0.0] and out.dtype == np.float64


# (name, box, width, height, expected)
CLIP_CASES = [
    # inside the frame: unchanged
    ("inside", [10, 20, 30, 40], 640, 360, [10, 20, 30, 40]),
    # overflowing every side
    ("overflow", [-5, -5, 700, 400], 640, 360, [0, 0, 640, 360]),
    # entirely outside on the right: collapses to a zero-width box on the edge
    ("outside_right", [700, 10, 800, 20], 640, 360, [640, 10, 640, 20]),
    # inverted box: each coordinate is clipped, the order is kept (still inverted)
    ("inverted_kept", [700, 10, -5, 20], 640, 360, [640, 10, 0, 20]),
]


@pytest.mark.parametrize("name,box,w,h,expected", CLIP_CASES, ids=[c[0] for c in CLIP_CASES])
def test_clip_boxes(name, box, w, h, expected):
    assert clip_boxes(box, w, h).tolist() == expected


def test_clip_boxes_does_not_modify_input_and_keeps_shape():
    boxes = np.array([[[-1.0, -1, 5, 5]] * 3] * 2)  # (2, 3, 4)
    out = clip_boxes(boxes, 4, 4)
    assert out.shape == (2, 3, 4) and (out[..., :2] == 0).all() and (out[..., 2:] == 4).all()
    assert boxes[0, 0, 0] == -1.0


@pytest.mark.parametrize("bad", [[1, 2, 3], [[1, 2, 3, 4, 5]], 7.0])
def test_as_boxes_rejects_wrong_last_dimension(bad):
    with pytest.raises(ValueError, match="last dimension of 4"):
        as_boxes(bad)


# (name, a, b, tIoU, intersection or None); spans are inclusive (start, end) frames
SPAN_CASES = [
    # identical
    ("identical", (0, 9), (0, 9), 1.0, (0, 9)),
    # one-frame spans on the same frame: |I| = |U| = 1
    ("one_frame_same", (3, 3), (3, 3), 1.0, (3, 3)),
    # one-frame spans on neighbouring frames
    ("one_frame_adjacent", (3, 3), (4, 4), 0.0, None),
    # touching: (0, 4) and (4, 9) share frame 4 -> 1 / (5 + 6 - 1)
    ("touching_share_frame", (0, 4), (4, 9), 0.1, (4, 4)),
    # adjacent without a shared frame: (0, 4) then (5, 9)
    ("adjacent", (0, 4), (5, 9), 0.0, None),
    # nested: 4 frames inside 10
    ("nested", (3, 6), (0, 9), 0.4, (3, 6)),
    # partial: I = 5..9 (5 frames), U = 0..14 (15 frames)
    ("partial", (0, 9), (5, 14), 1 / 3, (5, 9)),
    # far apart
    ("disjoint", (0, 9), (100, 109), 0.0, None),
    # an empty span (end < start) has no frames: tIoU 0, no intersection
    ("empty_span", (5, 3), (0, 9), 0.0, None),
    # both empty
    ("both_empty", (5, 3), (5, 3), 0.0, None),
]


@pytest.mark.parametrize("name,a,b,tiou,inter", SPAN_CASES, ids=[c[0] for c in SPAN_CASES])
def test_spans(name, a, b, tiou, inter):
    assert temporal_iou(a, b) == pytest.approx(tiou, abs=1e-12)
    assert temporal_iou(b, a) == pytest.approx(tiou, abs=1e-12)
    assert span_intersection(a, b) == inter
    assert float(temporal_iou_many(a, b)) == pytest.approx(tiou, abs=1e-12)


# (name, span, length)
LENGTH_CASES = [
    ("one_frame", (7, 7), 1),  # inclusive: a single frame
    ("ten_frames", (0, 9), 10),  # 0..9
    ("empty", (5, 4), 0),  # end < start
    ("very_empty", (10, 0), 0),  # clipped at 0, never negative
]


@pytest.mark.parametrize("name,span,n", LENGTH_CASES, ids=[c[0] for c in LENGTH_CASES])
def test_span_length(name, span, n):
    assert span_length(span) == n


def test_temporal_iou_many_broadcasts_rows():
    a = np.array([[0, 9], [3, 3], [0, 4], [5, 3]])  # (4, 2)
    b = np.array([[0, 9], [3, 3], [4, 9], [0, 9]])  # (4, 2)
    # identical, one frame, touching spans, empty span
    assert temporal_iou_many(a, b).tolist() == pytest.approx([1.0, 1.0, 0.1, 0.0])
    # one span against many: (2,) vs (3, 2) -> (3,)
    out = temporal_iou_many([0, 9], [[0, 9], [5, 14], [20, 29]])
    assert out.shape == (3,) and out.tolist() == pytest.approx([1.0, 1 / 3, 0.0])


# (name, xywh, xyxy)
XYWH_CASES = [
    # HC-STVG fixture entry 1, first box
    ("hcstvg_first", [200, 60, 90, 250], [200, 60, 290, 310]),
    # zero size: a point
    ("zero_size", [5, 5, 0, 0], [5, 5, 5, 5]),
    # fractional
    ("fractional", [0.5, 1.5, 2.25, 3.0], [0.5, 1.5, 2.75, 4.5]),
]


@pytest.mark.parametrize("name,xywh,xyxy", XYWH_CASES, ids=[c[0] for c in XYWH_CASES])
def test_xywh_to_xyxy(name, xywh, xyxy):
    assert xywh_to_xyxy(xywh) == xyxy


coord = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
box = st.tuples(coord, coord, coord, coord).map(list)
size = st.floats(1e-3, 1e6, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(a=box, b=box)
def test_iou_giou_bounded_and_finite(a, b):
    # arbitrary finite boxes, including inverted, zero-area and huge ones
    iou, giou = float(box_iou(a, b)), float(box_giou(a, b))
    assert np.isfinite(iou) and np.isfinite(giou)
    assert 0.0 <= iou <= 1.0
    assert -1.0 <= giou <= 1.0
    assert giou <= iou + 1e-9  # GIoU subtracts a non-negative penalty
    assert float(box_iou(b, a)) == iou
    assert np.isfinite(box_area(a)) and box_area(a) >= 0


@settings(max_examples=200, deadline=None)
@given(a=box, b=box, w=size, h=size)
def test_l1_and_clip_finite(a, b, w, h):
    l1 = float(box_l1(a, b, w, h))
    assert np.isfinite(l1) and l1 >= 0
    c = clip_boxes(a, w, h)
    assert np.isfinite(c).all()
    assert (c[0::2] >= 0).all() and (c[0::2] <= w).all() and (c[1::2] >= 0).all() and (c[1::2] <= h).all()


frame = st.integers(-1000, 1000)
span = st.tuples(frame, frame)


@settings(max_examples=300, deadline=None)
@given(a=span, b=span)
def test_temporal_iou_properties(a, b):
    # arbitrary integer spans, including empty (end < start) ones
    t = temporal_iou(a, b)
    assert 0.0 <= t <= 1.0 and t == temporal_iou(b, a)
    assert float(temporal_iou_many(a, b)) == pytest.approx(t, abs=1e-12)
    inter = span_intersection(a, b)
    if inter is None:
        assert t == 0.0
    else:
        assert t > 0.0 and span_length(inter) <= min(span_length(a), span_length(b))
