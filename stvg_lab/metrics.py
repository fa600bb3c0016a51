"""STVG evaluation metrics: m_tIoU, m_vIoU and vIoU@R, with TubeDETR's definitions (paper §4.1).

The paper defers to TubeDETR (Yang et al., 2022) for the metrics; this module follows its
``datasets/vidstg_eval.py`` and ``datasets/hcstvg_eval.py`` with the fix of its issue #3. In
the first public version ``max_end`` was ``min(gt_end, pred_end)``, which shrank the vIoU
denominator and inflated vIoU. The later papers (STCAT, CG-STVG, TA-STVG) and this module
use the corrected union.

A tube is ``{frame: [x1, y1, x2, y2]}``: original-video frame numbers, absolute pixels.
Frame keys may be ints or numeric strings, as they come back from JSON.

* **tIoU** compares the tubes' extents on the integer frame axis. The extent of a tube is
  ``[min frame, max frame]`` inclusive, i.e. ``[min, max + 1)`` half-open as in TubeDETR's
  ``sted``, and ``tIoU = |A ∩ B| / |A ∪ B|`` counted in frames. ``eval_frames`` does not
  change tIoU, as in TubeDETR.
* **vIoU** is ``(1 / |U|) * Σ_{f ∈ I} IoU(pred_f, gt_f)``, where ``I`` and ``U`` are the
  temporal intersection and union of the extents. With ``eval_frames`` both ``I`` and ``U``
  keep only those frames, because TubeDETR scores only the frames it sampled (see
  :func:`tubedetr_sampled_frames`). A frame of ``I`` where either tube has no box counts as
  IoU 0, so a prediction should be one box per frame of its span. If ``U`` is empty,
  ``vIoU = 0``, because TubeDETR divides by ``max(|U|, 1)``. TubeDETR counts ``U`` as
  the hull ``[min start, max end)``. The hull differs from the union only when the extents
  are disjoint, and then vIoU is 0 either way.
* **vIoU@R** is the fraction of samples with ``vIoU > R``. The comparison is strict.
* A ground-truth sample with no prediction (the id is absent, or the tube is empty or None)
  scores ``tIoU = vIoU = 0``. It is counted in ``n`` and reported in ``n_missing``.
  Predictions for ids that are not in the ground truth are ignored and counted in
  ``n_extra``.
"""

from __future__ import annotations

import logging
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from stvg_lab.geometry import box_iou

logger = logging.getLogger(__name__)

Tube = Mapping[Any, Sequence[float]]
DEFAULT_THRESHOLDS: tuple[float, ...] = (0.3, 0.5)


def tubedetr_sampled_frames(
    start: int, end: int, fps: float, video_fps: float = 5, video_max_len: int = 200
) -> list[int]:
    """Return the frames TubeDETR evaluates at: ``video_fps`` frames a second in ``[start, end)``.

    This is TubeDETR's sampler, not the model's. It keeps ``start``, then every frame ``f``
    in ``range(start, end)`` where ``int(f * video_fps / fps)`` first grows past the value
    for the last kept frame. If more than ``video_max_len`` frames remain, it keeps
    ``frames[(j * len) // video_max_len]`` for ``j < video_max_len``. ``end`` itself is never
    kept. TubeDETR passes ``end = img_num - 1`` for HC-STVG, so the last frame of the video
    is never scored, and ``used_segment.end_fid`` for VidSTG. The rate is computed as
    TubeDETR computes it, ``int(f * (video_fps / fps))`` in floating point, so that the
    frames near a rounding boundary come out the same.

    Raises ValueError if ``fps`` or ``video_fps`` is not positive, or if ``video_max_len < 1``.
    """
    if not (fps > 0 and video_fps > 0):
        raise ValueError(f"fps and video_fps must be positive; got fps={fps!r}, video_fps={video_fps!r}")
    if video_max_len < 1:
        raise ValueError(f"video_max_len must be at least 1; got {video_max_len!r}")
    rate = video_fps / fps
    frame_ids = [int(start)]
    last_bin = int(frame_ids[-1] * rate)
    for f in range(int(start), int(end)):
        b = int(f * rate)
        if b > last_bin:
            frame_ids.append(f)
            last_bin = b
    n = len(frame_ids)
    if n > video_max_len:
        frame_ids = [frame_ids[(j * n) // video_max_len] for j in range(video_max_len)]
    return frame_ids


def _bad_frame_key(sample_id: Hashable, role: str, keys: Sequence[Any]) -> ValueError:
    # Slow path, only reached on an error: find the first key that is not an int or numeric str.
    for k in keys:
        ok = isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_))
        if isinstance(k, str):
            try:
                int(k)
                ok = True
            except ValueError:
                ok = False
        if not ok:
            return ValueError(
                f"{role} tube of sample {sample_id!r}: frame key {k!r} is not an integer frame number "
                "(use int or numeric-string keys)"
            )
    return ValueError(f"{role} tube of sample {sample_id!r}: frame keys could not be read as integers")


def _bad_box(sample_id: Hashable, role: str, tube: Tube) -> ValueError:
    # Slow path, only reached on an error: find the first box that is not 4 finite numbers.
    for frame, box in tube.items():
        ok = isinstance(box, (Sequence, np.ndarray)) and not isinstance(box, str) and len(box) == 4
        ok = ok and all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) and np.isfinite(v)
            for v in box
        )
        if not ok:
            return ValueError(
                f"{role} tube of sample {sample_id!r}, frame {frame!r}: box {box!r} is not 4 finite numbers "
                "[x1, y1, x2, y2]"
            )
    return ValueError(f"{role} tube of sample {sample_id!r}: boxes could not be read as an (n, 4) array")


def _frames_as_ints(keys: list[Any], sample_id: Hashable, role: str) -> np.ndarray:
    """``keys`` (ints or numeric strings) as an int64 array ``(n,)``, in the given order."""
    if not keys:
        return np.zeros(0, dtype=np.int64)
    raw = np.asarray(keys)
    # ints give kind "i"/"u" and numeric strings give "U". Floats, bools and mixtures are
    # refused, so that 12.5 is never truncated silently to frame 12.
    if raw.dtype.kind in "iu":
        return raw.astype(np.int64)
    if raw.dtype.kind == "U":
        try:
            return raw.astype(np.int64)
        except ValueError:
            raise _bad_frame_key(sample_id, role, keys) from None
    raise _bad_frame_key(sample_id, role, keys)


def tube_to_arrays(tube: Tube | None, sample_id: Hashable = "?", role: str = "pred") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(frames, boxes)`` for ``tube``, sorted by frame.

    ``frames`` has shape ``(n,)`` and dtype int64, ``boxes`` has shape ``(n, 4)`` and dtype
    float64. A None or empty tube gives ``n = 0``. Raises ValueError naming ``sample_id``,
    ``role`` and the frame if a key is not an integer, two keys name the same frame
    (``5`` and ``"5"``), or a box is not 4 finite numbers.
    """
    if not tube:
        return np.zeros(0, dtype=np.int64), np.zeros((0, 4), dtype=np.float64)
    keys = list(tube.keys())
    frames = _frames_as_ints(keys, sample_id, role)
    try:
        boxes = np.asarray(list(tube.values()))
    except ValueError:  # ragged: some box does not have 4 entries
        raise _bad_box(sample_id, role, tube) from None
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.dtype.kind not in "iuf":
        raise _bad_box(sample_id, role, tube)
    boxes = boxes.astype(np.float64, copy=False)
    if not np.isfinite(boxes).all():
        raise _bad_box(sample_id, role, tube)
    order = np.argsort(frames, kind="stable")
    frames, boxes = frames[order], boxes[order]
    if len(frames) > 1 and (np.diff(frames) == 0).any():
        dup = int(frames[1:][np.diff(frames) == 0][0])
        raise ValueError(f"{role} tube of sample {sample_id!r}: frame {dup} appears twice (e.g. as {dup} and '{dup}')")
    return frames, boxes


def _count_in(sorted_frames: np.ndarray, lo: int, hi: int) -> int:
    """Number of entries of ``sorted_frames`` in the inclusive range ``[lo, hi]``; 0 if ``hi < lo``."""
    if hi < lo:
        return 0
    return int(np.searchsorted(sorted_frames, hi, side="right") - np.searchsorted(sorted_frames, lo, side="left"))


def _score(
    preds: Mapping[Hashable, Tube | None],
    gts: Mapping[Hashable, Tube],
    eval_frames: Mapping[Hashable, Iterable[Any]] | None,
) -> dict[Hashable, dict[str, Any]]:
    """Score every gt sample; return ``{id: per-sample record}`` in ``gts`` order."""
    ids = list(gts)
    records: dict[Hashable, dict[str, Any]] = {}
    # Box pairs of all samples are stacked so box_iou runs once: gt and pred chunks
    # concatenate to (M, 4) each, and seg (M,) holds the sample index of each pair.
    gt_chunks: list[np.ndarray] = []
    pred_chunks: list[np.ndarray] = []
    seg_chunks: list[np.ndarray] = []
    for i, sid in enumerate(ids):
        gf, gb = tube_to_arrays(gts[sid], sid, "gt")
        if len(gf) == 0:
            raise ValueError(f"gt tube of sample {sid!r} is empty; drop the sample or fix its loader")
        ef = None
        if eval_frames is not None:
            if sid not in eval_frames:
                raise ValueError(
                    f"eval_frames has no entry for sample {sid!r}; give frames for every gt sample "
                    "(e.g. tubedetr_sampled_frames) or pass eval_frames=None"
                )
            # (E,) sorted unique; duplicates are harmless here, unlike in a tube.
            ef = np.unique(_frames_as_ints(list(eval_frames[sid]), sid, "eval_frames"))
        gs, ge = int(gf[0]), int(gf[-1])
        rec: dict[str, Any] = {"gt_span": (gs, ge), "pred_span": None, "tIoU": 0.0, "vIoU": 0.0,
                               "iou_sum": 0.0, "n_inter": 0, "n_union": 0, "missing": False}
        records[sid] = rec
        pf, pb = tube_to_arrays(preds.get(sid), sid, "pred")
        if len(pf) == 0:
            rec["missing"] = True
            rec["n_union"] = len(gf) if ef is None else _count_in(ef, gs, ge)
            continue
        ps, pe = int(pf[0]), int(pf[-1])
        rec["pred_span"] = (ps, pe)
        lo, hi = max(gs, ps), min(ge, pe)
        inter = max(0, hi - lo + 1)
        union = (ge - gs + 1) + (pe - ps + 1) - inter
        rec["tIoU"] = inter / union
        # Frames with a box in both tubes all lie in [lo, hi]; the other frames of that
        # range count as IoU 0, which only the denominator sees.
        _, ig, ip = np.intersect1d(gf, pf, assume_unique=True, return_indices=True)
        if ef is None:
            rec["n_inter"], rec["n_union"] = inter, union
        else:
            keep = np.isin(gf[ig], ef, assume_unique=True)
            ig, ip = ig[keep], ip[keep]
            n_inter = _count_in(ef, lo, hi)
            rec["n_inter"] = n_inter
            rec["n_union"] = _count_in(ef, gs, ge) + _count_in(ef, ps, pe) - n_inter
        if len(ig):
            gt_chunks.append(gb[ig])
            pred_chunks.append(pb[ip])
            seg_chunks.append(np.full(len(ig), i, dtype=np.int64))
    if gt_chunks:
        ious = box_iou(np.concatenate(gt_chunks), np.concatenate(pred_chunks))  # (M,)
        sums = np.bincount(np.concatenate(seg_chunks), weights=ious, minlength=len(ids))  # (N,)
        for i, sid in enumerate(ids):
            rec = records[sid]
            rec["iou_sum"] = float(sums[i])
            rec["vIoU"] = float(sums[i]) / max(rec["n_union"], 1)
    return records


def _aggregate(
    records: Mapping[Hashable, Mapping[str, Any]], thresholds: Sequence[float], n_extra: int
) -> dict[str, Any]:
    tiou = np.array([r["tIoU"] for r in records.values()], dtype=np.float64)
    viou = np.array([r["vIoU"] for r in records.values()], dtype=np.float64)
    out: dict[str, Any] = {"m_tIoU": float(tiou.mean()), "m_vIoU": float(viou.mean())}
    for r in thresholds:
        out[f"vIoU@{r}"] = float((viou > r).mean())
    out["n"] = len(records)
    out["n_missing"] = sum(1 for r in records.values() if r["missing"])
    out["n_extra"] = n_extra
    return out


def evaluate(
    preds: Mapping[Hashable, Tube | None],
    gts: Mapping[Hashable, Tube],
    eval_frames: Mapping[Hashable, Iterable[Any]] | None = None,
    per_sample: bool = False,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, Any]:
    """Return m_tIoU, m_vIoU and vIoU@R of ``preds`` against ``gts`` (paper §4.1; TubeDETR).

    ``preds`` and ``gts`` map a sample id to a tube ``{frame: [x1, y1, x2, y2]}``.
    ``eval_frames``, if given, maps each gt id to the frames at which vIoU is scored. The
    definitions are in the module docstring. The result is a dict with:

    * ``m_tIoU``, ``m_vIoU``, ``vIoU@0.3`` and ``vIoU@0.5`` (one key for each of
      ``thresholds``): fractions in ``[0, 1]``, averaged over the gt samples.
    * ``n``: the number of gt samples scored. Missing predictions are included.
    * ``n_missing``: the number of gt ids with no prediction or an empty one.
    * ``n_extra``: the number of prediction ids that are not in ``gts``. They are ignored.
    * ``per_sample``, only if ``per_sample=True``: ``{id: {tIoU, vIoU, gt_span, pred_span,
      iou_sum, n_inter, n_union, missing}}``. The spans are inclusive
      ``(first, last)`` frames, and ``pred_span`` is None when the prediction is missing.
      ``vIoU = iou_sum / max(n_union, 1)``. ``n_inter`` is the number of frames scored in
      the intersection.

    Raises ValueError if ``gts`` is empty or a gt tube is empty, if ``eval_frames`` lacks a
    gt id, or if a frame key or box is malformed. The message names the sample id and the
    frame.
    """
    if not gts:
        raise ValueError("gts is empty: there is nothing to evaluate")
    records = _score(preds, gts, eval_frames)
    n_extra = sum(1 for k in preds if k not in gts)
    out = _aggregate(records, thresholds, n_extra)
    if out["n_missing"]:
        level = logging.WARNING if out["n_missing"] == out["n"] else logging.INFO
        logger.log(level, "%d of %d gt samples have no prediction (scored 0)", out["n_missing"], out["n"])
    if per_sample:
        out["per_sample"] = records
    return out


def evaluate_by_group(
    preds: Mapping[Hashable, Tube | None],
    gts: Mapping[Hashable, Tube],
    groups: Mapping[Hashable, str],
    eval_frames: Mapping[Hashable, Iterable[Any]] | None = None,
    *,
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> dict[str, dict[str, Any]]:
    """Return :func:`evaluate`'s result for each group of samples and for ``"all"``.

    ``groups`` maps each gt id to a group name, such as VidSTG's ``"declarative"`` or
    ``"interrogative"``. Each sample is scored once. ``n_extra`` counts prediction ids that
    are not in ``gts``; it is reported under ``"all"`` and is 0 for the other groups.
    Raises ValueError if a gt id has no group or if a group is named ``"all"``.
    """
    if not gts:
        raise ValueError("gts is empty: there is nothing to evaluate")
    unlabelled = [sid for sid in gts if sid not in groups]
    if unlabelled:
        raise ValueError(f"{len(unlabelled)} gt samples have no group, e.g. {unlabelled[0]!r}; give every gt id a group")
    if "all" in {groups[sid] for sid in gts}:
        raise ValueError('a group is named "all", which is reserved for the whole set; rename it')
    records = _score(preds, gts, eval_frames)
    n_extra = sum(1 for k in preds if k not in gts)
    out: dict[str, dict[str, Any]] = {}
    for name in sorted({groups[sid] for sid in gts}):
        out[name] = _aggregate({sid: r for sid, r in records.items() if groups[sid] == name}, thresholds, 0)
    out["all"] = _aggregate(records, thresholds, n_extra)
    return out
