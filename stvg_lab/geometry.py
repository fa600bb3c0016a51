"""Boxes and spans: IoU, GIoU, L1, centre hits and temporal IoU, vectorised over many boxes.

Boxes are ``[x1, y1, x2, y2]`` (two opposite corners, paper §3.1). Arrays of boxes have
shape ``(..., 4)`` and broadcast against each other. Degenerate boxes (zero area, or
``x2 < x1``) count as having zero width/height, so every function returns a finite value,
never NaN, for finite inputs; ``tests/test_geometry.py`` lists the edge values. Inputs must
be finite: an ``inf`` coordinate makes ``inf - inf = NaN``. Nothing upstream produces one,
because parsed answers and annotations are finite pixels. The property tests draw from
``±1e6``.

Spans are inclusive integer intervals ``(start, end)`` on a frame axis, as in Eq. 6:
``|T| = end - start + 1``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Box = Sequence[float]
Span = tuple[int, int]


def as_boxes(boxes: object) -> np.ndarray:
    """Return ``boxes`` as a float64 array of shape ``(..., 4)``."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.shape[-1:] != (4,):
        raise ValueError(f"boxes must have a last dimension of 4 (x1, y1, x2, y2); got shape {arr.shape}")
    return arr


def box_area(boxes: object) -> np.ndarray:
    """Area of each box, ``(...,)``; inverted or empty boxes have area 0."""
    b = as_boxes(boxes)
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def clip_boxes(boxes: object, width: float, height: float) -> np.ndarray:
    """Clip boxes to the frame ``[0, width] x [0, height]`` (coordinates only; order kept)."""
    b = as_boxes(boxes).copy()
    b[..., 0::2] = np.clip(b[..., 0::2], 0.0, float(width))
    b[..., 1::2] = np.clip(b[..., 1::2], 0.0, float(height))
    return b


def _inter_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # a, b: (..., 4) broadcastable; returns intersection and union areas (...,)
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = box_area(a) + box_area(b) - inter
    return inter, union


def box_iou(a: object, b: object) -> np.ndarray:
    """Elementwise IoU of two broadcastable box arrays; 0 where the union is empty."""
    a, b = as_boxes(a), as_boxes(b)
    inter, union = _inter_union(a, b)
    return np.divide(inter, union, out=np.zeros_like(union), where=union > 0)


def box_giou(a: object, b: object) -> np.ndarray:
    """Elementwise generalised IoU in ``[-1, 1]`` (Rezatofighi et al., used in Eq. 7).

    ``GIoU = IoU - |C \\ (A ∪ B)| / |C|`` with ``C`` the smallest enclosing box. Where ``C``
    has zero area (both boxes degenerate and collinear) the penalty term is taken as 0, so
    GIoU equals IoU (itself 0 there).
    """
    a, b = as_boxes(a), as_boxes(b)
    inter, union = _inter_union(a, b)
    iou = np.divide(inter, union, out=np.zeros_like(union), where=union > 0)
    cw = np.clip(np.maximum(a[..., 2], b[..., 2]) - np.minimum(a[..., 0], b[..., 0]), 0, None)
    ch = np.clip(np.maximum(a[..., 3], b[..., 3]) - np.minimum(a[..., 1], b[..., 1]), 0, None)
    c = cw * ch
    penalty = np.divide(c - union, c, out=np.zeros_like(c), where=c > 0)
    return np.clip(iou - penalty, -1.0, 1.0)


def box_l1(a: object, b: object, width: float = 1.0, height: float = 1.0) -> np.ndarray:
    """Mean absolute coordinate difference, x normalised by ``width`` and y by ``height``.

    With both boxes inside the frame this lies in ``[0, 1]`` (the L1 term of Eq. 7; the
    paper does not say how it is normalised, see README "Rewards"). Raises ValueError if
    ``width`` or ``height`` is not positive.
    """
    if not (np.all(np.asarray(width) > 0) and np.all(np.asarray(height) > 0)):
        raise ValueError(f"box_l1: width and height must be positive (the frame size); got {width!r} x {height!r}")
    a, b = as_boxes(a), as_boxes(b)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return np.mean(np.abs(a - b) / scale, axis=-1)


def centre_inside(a: object, b: object) -> np.ndarray:
    """Elementwise: whether the centre of box ``a`` lies in box ``b``, edges included (float 0/1).

    Moving ``a`` a few pixels on the object of ``b`` keeps it 1, as growing ``a`` does; moving it onto
    another object or the background makes it 0 (``stvg_lab.rewards``' ``centre`` term). A degenerate
    ``b`` holds only the points on it.
    """
    a, b = as_boxes(a), as_boxes(b)
    cx, cy = (a[..., 0] + a[..., 2]) / 2, (a[..., 1] + a[..., 3]) / 2
    return ((b[..., 0] <= cx) & (cx <= b[..., 2]) & (b[..., 1] <= cy) & (cy <= b[..., 3])).astype(np.float64)


def span_length(span: Span) -> int:
    """Number of frames in an inclusive span; 0 when ``end < start``."""
    return max(0, int(span[1]) - int(span[0]) + 1)


def span_intersection(a: Span, b: Span) -> Span | None:
    """Eq. 6: ``[max(ts, ts_gt), min(te, te_gt)]``, or None when it is empty."""
    start, end = max(int(a[0]), int(b[0])), min(int(a[1]), int(b[1]))
    return (start, end) if start <= end else None


def temporal_iou(a: Span, b: Span) -> float:
    """IoU of two inclusive integer spans (Eq. 5); 0 if either span is empty."""
    la, lb = span_length(a), span_length(b)
    if la == 0 or lb == 0:
        return 0.0
    inter = span_length((max(a[0], b[0]), min(a[1], b[1])))
    return inter / (la + lb - inter)


def temporal_iou_many(a: object, b: object) -> np.ndarray:
    """Vectorised :func:`temporal_iou` over ``(..., 2)`` arrays of inclusive spans."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    la = np.clip(a[..., 1] - a[..., 0] + 1, 0, None)
    lb = np.clip(b[..., 1] - b[..., 0] + 1, 0, None)
    inter = np.clip(np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0, None)
    inter = np.where((la > 0) & (lb > 0), inter, 0.0)
    union = la + lb - inter
    return np.divide(inter, union, out=np.zeros_like(union), where=union > 0)


def xywh_to_xyxy(box: Box) -> list[float]:
    """``[x, y, w, h]`` (top-left corner plus size, HC-STVG) to ``[x1, y1, x2, y2]``."""
    x, y, w, h = box
    return [x, y, x + w, y + h]
