"""Which object does an answer box: the target, a distractor, or nothing? Per frame of the ground-truth span.

Why: m_vIoU cannot tell a box on the wrong object from a box on empty background, and on the synthetic
benchmarks what a long SFT leaves is the clips with distractors (bench/LEARNING.md round 14: one-object
clips 35.5 m_vIoU, clips with distractors 15-17). If the answers box a distractor, the stand-in finds
shapes but not the one the sentence names, and the question becomes which words it fails to match;
if they box nothing, it does not find the shapes at all.

The synthetic annotations keep the target's boxes only; :func:`stvg_lab.data.synth.scene_objects`
draws every object of a clip again. For each sampled frame of the ground-truth span the answer's pred
box is given to the visible object it overlaps most (:func:`owner`), and the frame is grouped by what
tells the most confusable visible distractor from the target (:func:`difference`): ``"colour"``,
``"shape"``, ``"size"``, ``"motion"`` when it differs in that attribute alone, ``"2+"`` otherwise,
``None`` when no distractor is visible in that frame.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from stvg_lab.analysis.swap import prediction_field
from stvg_lab.data.synth import ATTRIBUTES, scene_objects
from stvg_lab.geometry import box_iou

OUTCOMES = ("target", "distractor", "none", "missing")  # boxed the target, another object, no object, or wrote no box


def owner(box: Sequence[float], candidates: Sequence[Sequence[float] | None]) -> int | None:
    """Index of the candidate box with the highest IoU with ``box`` (the first on ties); None when it overlaps none.

    A None candidate (an object not visible in that frame) is never the owner.
    """
    best, at = 0.0, None
    for i, c in enumerate(candidates):
        if c is not None and (iou := float(box_iou(box, c))) > best:
            best, at = iou, i
    return at


def frame_boxes(objects: Sequence[Mapping[str, Any]], frame: int, scale: tuple[float, float] = (1.0, 1.0)) -> list[np.ndarray | None]:
    """Each object's box at source frame ``frame`` in model pixels (``scale``: model pixels per source pixel
    ``(x, y)``), None for an object not in view there: :func:`owner`'s candidates, in ``objects``' order."""
    sx, sy = scale
    return [np.asarray(o["boxes"][frame], dtype=float) * [sx, sy, sx, sy] if o["visible"][frame] else None for o in objects]


def difference(target: Mapping[str, str], distractor: Mapping[str, str]) -> str:
    """What tells ``distractor`` from ``target``: the one attribute they differ in, or ``"2+"``.

    The generator never makes a distractor that agrees on every attribute the sentence names
    (``synth_scene._distractor_attributes``), so an empty difference is an error.
    """
    differ = _differing(target, distractor)
    if not differ:
        raise ValueError(f"a distractor with the target's attributes {dict(target)}: not a generated scene")
    return differ[0] if len(differ) == 1 else "2+"


def _differing(target: Mapping[str, str], other: Mapping[str, str]) -> tuple[str, ...]:
    """The attributes ``other`` differs from ``target`` in, in ``ATTRIBUTES`` order."""
    return tuple(a for a in ATTRIBUTES if target.get(a) != other.get(a))


def _closest(target: Mapping[str, str], others: Sequence[Mapping[str, str]]) -> Mapping[str, str] | None:
    """The most confusable of ``others``: the fewest attributes differ from ``target`` (the first on ties); None without others."""
    if not others:
        return None
    return others[int(np.argmin([len(_differing(target, o)) for o in others]))]


def frame_rows(
    sample_id: str,
    span_frames: Mapping[int, int],
    pred: Mapping[int, Sequence[float]],
    objects: Sequence[Mapping[str, Any]],
    scale: tuple[float, float] = (1.0, 1.0),
) -> list[dict[str, Any]]:
    """One row per sampled frame ``k`` of the ground-truth span: what ``pred[k]`` boxed and what tells the objects apart.

    ``span_frames``: sampled frame ``k`` -> its source frame, for the span's frames; ``pred``: the
    answer's boxes in model pixels by ``k``; ``objects``: :func:`~stvg_lab.data.synth.scene_objects`
    (source pixels); ``scale``: model pixels per source pixel, ``(x, y)``. Row: ``id``, ``frame``
    (``k``), ``outcome`` (:data:`OUTCOMES`), ``differs`` (:func:`difference` of the most confusable
    visible distractor, None without one), ``differ`` (the attributes it differs in, a tuple in
    ``ATTRIBUTES`` order; None without one), ``iou`` (the pred box's IoU with the target; 0 when missing).
    """
    sx, sy = scale
    target = next(o for o in objects if o["role"] == "target")
    rows = []
    for k, f in sorted(span_frames.items()):
        visible = [o for o in objects if o["visible"][f]]
        closest = _closest(target["attributes"], [o["attributes"] for o in visible if o["role"] != "target"])
        row = {"id": sample_id, "frame": k, "differs": None if closest is None else difference(target["attributes"], closest),
               "differ": None if closest is None else _differing(target["attributes"], closest)}
        box = pred.get(k)
        if box is None:
            rows.append({**row, "outcome": "missing", "iou": 0.0})
            continue
        at = owner(box, frame_boxes(objects, f, scale))
        outcome = "none" if at is None else "target" if objects[at]["role"] == "target" else "distractor"
        t_box = np.asarray(target["boxes"][f], dtype=float) * [sx, sy, sx, sy]
        rows.append({**row, "outcome": outcome, "iou": float(box_iou(box, t_box))})
    return rows


def which_object_rows(predictions: Sequence[Any], samples: Sequence[Any], data_dir: Any) -> list[dict[str, Any]]:
    """:func:`frame_rows` of every sample of a synthetic benchmark, from its greedy answers.

    ``predictions``: :class:`~stvg_lab.infer.Prediction` objects or predictions.jsonl rows (their
    ``pred`` boxes, ``frame_numbers`` and ``model_size``), one per sample; ``samples``: the split's
    :func:`~stvg_lab.data.synth.load_synthetic` samples; ``data_dir``: the benchmark's folder, whose
    manifest draws the scenes again. An unparsed answer gives its span frames the outcome ``missing``.
    A sample without an answer is a ValueError naming it.
    """
    by_id = {prediction_field(p, "id"): p for p in predictions}
    rows: list[dict[str, Any]] = []
    for s in samples:
        if s.id not in by_id:
            raise ValueError(f"no prediction for sample {s.id!r}: the answers are another split's or a partial run's")
        p = by_id[s.id]
        mw, mh = prediction_field(p, "model_size")
        span = {k: int(f) for k, f in enumerate(prediction_field(p, "frame_numbers")) if int(f) in s.tube}
        pred = {int(k): b for k, b in (prediction_field(p, "pred") or {}).items()}
        rows += frame_rows(s.id, span, pred, scene_objects(data_dir, s.extras["key"]), (mw / s.width, mh / s.height))
    return rows


def outcome_table(rows: Iterable[Mapping[str, Any]], by: str | Callable[[Mapping[str, Any]], Any] = "differs") -> dict[Any, dict[str, float]]:
    """``{group: {"n", "clips", "target", "distractor", "none", "missing", "iou"}}``: each outcome's share of the group's frames and their mean IoU.

    ``n`` counts the group's frames and ``clips`` the clips they come from (rows' ``id``): a clip's frames
    are not independent (one answer writes them all), so a share over few clips is a few answers' worth.
    Groups are the values of ``row[by]`` (or ``by(row)``) in sorted order (None last), then ``"all"``.
    """
    key = by if callable(by) else (lambda row: row[by])
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
        groups.setdefault("all", []).append(row)
    order = sorted((g for g in groups if g != "all"), key=lambda v: (v is None, str(v))) + (["all"] if groups else [])
    return {g: {"n": len(groups[g]), "clips": len({r["id"] for r in groups[g]}), **{o: sum(r["outcome"] == o for r in groups[g]) / len(groups[g]) for o in OUTCOMES},
                "iou": sum(r["iou"] for r in groups[g]) / len(groups[g])} for g in order}
