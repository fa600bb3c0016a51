"""Does a model's *answer* carry its own clip, or a prior? The swap control on predictions.

:mod:`stvg_lab.analysis.reliance` asks whether the model's *loss* on a target answer depends on the
frames (teacher-forced, one forward per clip). This module asks the same of the answers the model
actually gives, with no model at all: score each clip's answer against its own ground truth, then
score the *next* clip's answer (in sample order, the last against the first: the same pairing as
the reliance control) against the same ground truth. An answer that is a prior -- the same span or
box whatever the clip -- scores alike both ways; what the answer read from its own clip is the gap.

Also per box list: how many distinct boxes the answers use and how the single most common one
scores on every frame. bench/LEARNING.md round 7 found GRPO collapsing the stand-in's think boxes
to one central box whose score beats the SFT's partly-read boxes: ``constant`` then equals ``own``.

Box scores are per ground-truth frame where the answer's tube has a box: ``centre`` (the box
contains the centre of the ground-truth box) and ``iou``. A swapped answer is read at the frame
of its own tube nearest to that frame, so clips of different lengths pair too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Mapping, Sequence

import numpy as np

from stvg_lab.geometry import box_iou, centre_inside, temporal_iou

TUBES = ("think", "pred")


def prediction_field(p: Any, name: str) -> Any:
    """Field ``name`` of a :class:`~stvg_lab.infer.Prediction` or of its dict (a predictions.jsonl row)."""
    return p.get(name) if isinstance(p, Mapping) else getattr(p, name)


def _tube(p: Any, tube: str) -> dict[int, list[float]]:
    """``{original frame: box}`` of one prediction (dict from predictions.jsonl or :class:`~stvg_lab.infer.Prediction`)."""
    t = prediction_field(p, f"{tube}_tube") or {}
    return {int(f): list(b) for f, b in t.items()}


def _span(tube: Mapping[int, Sequence[float]]) -> tuple[int, int] | None:
    return (min(tube), max(tube)) if tube else None


def _at(tube: Mapping[int, Sequence[float]], frame: int) -> list[float]:
    """The box of ``tube`` at ``frame``, or at the nearest frame it has (ties: the earlier)."""
    if frame in tube:
        return list(tube[frame])
    keys = np.fromiter(tube, dtype=np.int64)
    return list(tube[int(keys[np.argmin(np.abs(keys - frame) * 2 + (keys > frame))])])


def _box_scores(pairs: list[tuple[list[float], list[float]]]) -> tuple[float, float]:
    """Mean centre hit and mean IoU of ``(box, gt)`` pairs; (nan, nan) for none."""
    if not pairs:
        return float("nan"), float("nan")
    boxes, gts = np.array([b for b, _ in pairs], dtype=float), np.array([g for _, g in pairs], dtype=float)
    centre = centre_inside(gts, boxes)  # the ground truth's centre inside the answer's box
    iou = box_iou(boxes, gts)  # (N,)
    return float(centre.mean()), float(iou.mean())


def swap_control(predictions: Sequence[Any], samples: Sequence[Any]) -> dict[str, Any]:
    """Own vs next clip's answer against each clip's ground truth (module docstring).

    ``predictions``: one per sample id (``Prediction`` or its dict); ``samples``: the
    :class:`~stvg_lab.data.sample.Sample` list, whose order defines "next". Only samples whose
    answer parsed count, and "next" is the next such sample. Returns ``{"n", "span": {"own",
    "swapped"}, "think"/"pred": {"own_centre", "swapped_centre", "constant_centre", "own_iou",
    "swapped_iou", "constant_iou", "distinct", "frames"}}`` (a tube the format lacks is left out).
    Needs two parsed answers: ValueError otherwise, since nothing can be swapped.
    """
    by_id = {prediction_field(p, "id"): p for p in predictions}
    unknown = sorted(set(by_id) - {s.id for s in samples})
    if unknown:
        raise ValueError(f"predictions for samples not given: {unknown[:3]}")
    # (sample, {tube name: {frame: box}}) of each parsed answer, in sample order
    rows = [(s, {t: _tube(by_id[s.id], t) for t in TUBES}) for s in samples if s.id in by_id and not prediction_field(by_id[s.id], "error")]
    rows = [(s, tubes) for s, tubes in rows if tubes["pred"]]
    if len(rows) < 2:
        raise ValueError(f"the swap control needs at least two parsed answers, got {len(rows)}")
    n = len(rows)
    spans = [_span(tubes["pred"]) for _, tubes in rows]
    own_t = [temporal_iou(spans[i], s.span_frames) for i, (s, _) in enumerate(rows)]
    swap_t = [temporal_iou(spans[(i + 1) % n], s.span_frames) for i, (s, _) in enumerate(rows)]
    result: dict[str, Any] = {"n": n, "span": {"own": float(np.mean(own_t)), "swapped": float(np.mean(swap_t))}}
    for tube in TUBES:
        tubes = [by_tube[tube] for _, by_tube in rows]
        if not any(tubes):
            continue
        counts = Counter(tuple(b) for t in tubes for b in t.values())
        common = list(counts.most_common(1)[0][0])
        own, swapped, constant = [], [], []
        for i, (s, _) in enumerate(rows):
            other = tubes[(i + 1) % n]
            for frame, gt in s.tube.items():
                if frame in tubes[i]:
                    own.append((tubes[i][frame], list(gt)))
                    constant.append((common, list(gt)))
                    if other:
                        swapped.append((_at(other, frame), list(gt)))
        (oc, oi), (sc, si), (cc, ci) = _box_scores(own), _box_scores(swapped), _box_scores(constant)
        result[tube] = {"own_centre": oc, "swapped_centre": sc, "constant_centre": cc, "own_iou": oi, "swapped_iou": si,
                        "constant_iou": ci, "distinct": len(counts), "frames": len(own)}
    return result
