"""What a sampled answer changes against the greedy one: the span, the object it boxes, or only the boxes.

Why: Eq. 11 ranks a group's samples against each other, and the evaluation scores the greedy answer.
On the stand-in a sample at t 0.3 beats the greedy answer in ~90 % of GRPO's groups and the spatial
reward spreads in every group (bench/LEARNING.md round 24), yet GRPO gains no more on new clips than
as much SFT. A sample that wins by boxing the named object where the greedy answer boxed a distractor
carries a lesson about the sentence; one that wins by moving its boxes a few pixels on the same object
(jitter) carries little the next clip repeats. :func:`sample_difference` tells the two apart, per sample,
on the synthetic benchmarks, whose scenes can be drawn again (:func:`stvg_lab.data.synth.scene_objects`).

A sample's ``kind`` (:data:`KINDS`): ``"same"`` (the greedy span and boxes), ``"boxes"`` (the same span,
every shared frame boxed on the same object, or on none, as the greedy answer), ``"object"`` (the same
span, some frame boxed on another object than the greedy answer's, or on an object where it boxed none
or the reverse), ``"span"`` (another span, the same objects), ``"span+object"``, and ``"unparsed"``
(either answer has no span or boxes). Boxes are compared on the sampled frames where both answers
have one; a frame only one of them boxes is not an object change.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from stvg_lab.analysis.swap import prediction_field
from stvg_lab.analysis.which_object import frame_boxes, owner
from stvg_lab.geometry import box_iou
from stvg_lab.rewards import score_completion
from stvg_lab.video import reward_columns

KINDS = ("same", "boxes", "object", "span", "span+object", "unparsed")


def frame_owners(
    pred: Mapping[int, Sequence[float]],
    frame_numbers: Sequence[int],
    objects: Sequence[Mapping[str, Any]],
    scale: tuple[float, float] = (1.0, 1.0),
) -> dict[int, int | None]:
    """``{k: index into objects of the visible object pred[k] overlaps most, or None}`` for each boxed sampled frame ``k``.

    ``frame_numbers[k]``: the source frame of sampled frame ``k``; ``objects``: ``scene_objects`` (source
    pixels, ``boxes`` (N, 4) and ``visible`` (N,) per object); ``scale``: model pixels per source pixel ``(x, y)``.
    A box at an index past the clip's sampled frames (an answer whose span runs past the clip) has no frame to
    lie in and is left out.
    """
    return {int(k): owner(box, frame_boxes(objects, int(frame_numbers[int(k)]), scale))
            for k, box in pred.items() if 0 <= int(k) < len(frame_numbers)}


def sample_difference(greedy: Any, sample: Any, objects: Sequence[Mapping[str, Any]], scale: tuple[float, float]) -> dict[str, Any]:
    """How ``sample``'s answer differs from ``greedy``'s, both of one clip (``Prediction`` or predictions.jsonl rows).

    Returns ``kind`` (module docstring), ``shared`` (sampled frames both answers box), ``switched`` (of
    those, frames whose boxes lie on different objects, None counting as "no object"), ``to_target``
    (switched frames where the sample's box lies on the target), ``box_iou`` (mean IoU of the two boxes
    over the shared frames that lie on the same object; None without such a frame).
    """
    out: dict[str, Any] = {"kind": "unparsed", "shared": 0, "switched": 0, "to_target": 0, "box_iou": None}
    g_pred, s_pred = prediction_field(greedy, "pred"), prediction_field(sample, "pred")
    g_span, s_span = prediction_field(greedy, "span"), prediction_field(sample, "span")
    if not g_pred or not s_pred or g_span is None or s_span is None:
        return out
    # keys are ints in a Prediction, strings in a predictions.jsonl row
    g_pred, s_pred = ({int(k): np.asarray(b, dtype=float) for k, b in p.items()} for p in (g_pred, s_pred))
    frames = prediction_field(greedy, "frame_numbers")
    g_own, s_own = frame_owners(g_pred, frames, objects, scale), frame_owners(s_pred, frames, objects, scale)
    shared = sorted(g_own.keys() & s_own.keys())
    target = next(i for i, o in enumerate(objects) if o["role"] == "target")
    switched = [k for k in shared if g_own[k] != s_own[k]]
    kept = [k for k in shared if g_own[k] == s_own[k]]
    ious = [float(box_iou(g_pred[k], s_pred[k])) for k in kept]
    span_same = tuple(g_span) == tuple(s_span)
    if not span_same:
        kind = "span+object" if switched else "span"
    elif switched:
        kind = "object"
    else:
        same_boxes = g_pred.keys() == s_pred.keys() and all(np.allclose(g_pred[k], s_pred[k]) for k in shared)
        kind = "same" if same_boxes else "boxes"
    out.update(kind=kind, shared=len(shared), switched=len(switched), to_target=sum(s_own[k] == target for k in switched),
               box_iou=float(np.mean(ious)) if ious else None)
    return out


REWARD_TERMS = ("total", "temporal", "spatial", "think")  # score_completion's keys compared with the greedy answer's


def anatomy_rows(samples: Sequence[Any], greedy: Sequence[Any], groups: Sequence[Sequence[Any]], data_dir: Any,
                 answer_format: str = "paper") -> list[dict[str, Any]]:
    """One row per sampled answer: :func:`sample_difference` from its clip's greedy answer, and its rewards' differences.

    ``samples``: synthetic ``Sample`` objects; ``greedy``: one answer per sample, in order; ``groups``: one
    list of answers per generation, each in sample order; ``data_dir``: the benchmark (its scenes are drawn
    again). Rewards are Eq. 3-10 of each answer against the clip's GRPO reward columns
    (:func:`~stvg_lab.rewards.score_completion`, λk = 0.5); ``d_<term>`` is the sample's minus the greedy
    answer's for each of :data:`REWARD_TERMS`. Row: ``id``, ``generation``, the difference, ``d_*``,
    ``total`` and ``greedy_total``. A ValueError names a greedy answer of another clip.
    """
    from stvg_lab.data.synth import scene_objects

    rows: list[dict[str, Any]] = []
    for i, s in enumerate(samples):
        g = greedy[i]
        if prediction_field(g, "id") != s.id:
            raise ValueError(f"greedy answer {i} is of {prediction_field(g, 'id')!r}, not of sample {s.id!r}: give them in sample order")
        size = tuple(prediction_field(g, "model_size"))
        cols = {**reward_columns(s, prediction_field(g, "frame_numbers"), size), "answer_format": answer_format}
        objects = scene_objects(data_dir, s.extras["key"])
        scale = (size[0] / s.width, size[1] / s.height)
        base = score_completion(prediction_field(g, "text"), **cols)
        for k, answers in enumerate(groups):
            p = answers[i]
            if prediction_field(p, "id") != s.id:
                raise ValueError(f"generation {k}, answer {i} is of {prediction_field(p, 'id')!r}, not of sample {s.id!r}")
            score = score_completion(prediction_field(p, "text"), **cols)
            rows.append({"id": s.id, "generation": k, **sample_difference(g, p, objects, scale),
                         **{f"d_{t}": score[t] - base[t] for t in REWARD_TERMS}, "total": score["total"], "greedy_total": base["total"]})
    return rows


def kind_table(rows: Iterable[Mapping[str, Any]], reward: str = "total") -> dict[str, dict[str, float]]:
    """Per kind (then ``"all"``): ``n``, ``share`` of the samples, ``beats`` (share whose ``reward`` is above the
    greedy answer's), ``gain`` (mean ``reward`` minus the greedy answer's) and ``abs_gain`` (its mean size).

    ``rows``: one per sample with ``kind`` and ``d_<reward>`` (the sample's reward minus its greedy answer's).
    Kinds with no sample are left out.
    """
    rows = list(rows)
    key = f"d_{reward}"
    out: dict[str, dict[str, float]] = {}
    for kind in (*KINDS, "all"):
        group = [r for r in rows if kind == "all" or r["kind"] == kind]
        if not group:
            continue
        d = np.array([r[key] for r in group], dtype=float)
        out[kind] = {"n": len(group), "share": len(group) / len(rows), "beats": float(np.mean(d > 0)),
                     "gain": float(d.mean()), "abs_gain": float(np.abs(d).mean())}
    return out


def best_sample_kinds(rows: Iterable[Mapping[str, Any]], reward: str = "total") -> dict[str, float]:
    """Share of the groups (rows' ``id``) whose best sample beats the greedy answer, by that sample's kind, and ``"none"``.

    ``rows`` as for :func:`kind_table`; a group's best sample is the first with the largest ``d_<reward>``.
    """
    key = f"d_{reward}"
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["id"], []).append(r)
    if not groups:
        return {}
    counts = dict.fromkeys((*KINDS, "none"), 0)
    for group in groups.values():
        best = max(group, key=lambda r: r[key])
        counts[best["kind"] if best[key] > 0 else "none"] += 1
    return {k: v / len(groups) for k, v in counts.items() if v}
