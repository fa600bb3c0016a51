"""Trivial baselines, scored by the same evaluator as the models, so a number means something.

* ``whole_video_mean_box``: the whole video as the span, and in every frame the mean
  training box (in frame-relative coordinates, rescaled to each video's size).
* ``gt_span_mean_box``: the ground-truth span (an oracle for time) with the mean box: what
  temporal grounding alone is worth spatially.

And one control per model, :func:`own_span_mean_box`: the model's own pred span with the mean
box. Its m_tIoU is the model's; its m_vIoU is what the model's span earns with boxes that know
nothing of the clip, so the model's boxes ground only by as much as its m_vIoU exceeds it.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from stvg_lab.data.sample import Sample

Tube = dict[int, list[float]]


def mean_relative_box(samples: Iterable[Sample]) -> np.ndarray:
    """Mean gt box over all frames of all samples, as fractions of the frame ``(4,)``."""
    rel = [
        np.asarray(list(s.tube.values()), dtype=np.float64) / [s.width, s.height, s.width, s.height]
        for s in samples
    ]
    if not rel:
        raise ValueError("mean_relative_box needs at least one training sample")
    return np.concatenate(rel).mean(axis=0)


def _tube(frames: Iterable[int], rel_box: np.ndarray, sample: Sample) -> Tube:
    box = (rel_box * [sample.width, sample.height, sample.width, sample.height]).tolist()
    return {int(f): list(box) for f in frames}


def whole_video_mean_box(samples: Sequence[Sample], rel_box: np.ndarray) -> dict[str, Tube]:
    return {s.id: _tube(range(s.num_frames), rel_box, s) for s in samples}


def gt_span_mean_box(samples: Sequence[Sample], rel_box: np.ndarray) -> dict[str, Tube]:
    return {s.id: _tube(range(s.span_frames[0], s.span_frames[1] + 1), rel_box, s) for s in samples}


def own_span_mean_box(spans: Mapping[str, Sequence[int] | None], samples: Sequence[Sample], rel_box: np.ndarray) -> dict[str, Tube]:
    """Each sample's ``spans[id]`` (``[first, last]`` original frames, inclusive) with the mean box.

    A sample whose span is None or absent (its answer did not parse) gets no tube and scores 0,
    as the model does.
    """
    return {s.id: _tube(range(span[0], span[1] + 1), rel_box, s) for s in samples if (span := spans.get(s.id))}


BASELINES = {  # name -> f(test samples, mean relative box) -> {sample id: tube}
    "whole video + mean box": whole_video_mean_box,
    "gt span + mean box": gt_span_mean_box,
}
