"""Decode, sample and resize videos, and map ground truth to and from the model's frames.

Paper §4: "Input videos are uniformly sampled at 2 frames per second. Each frame is resized
so that its longer side is at most 336 pixels, preserving the original aspect ratio."
Everything the model reads or writes lives on that grid:

* **time**: sampled-frame indices ``k = 0 .. T-1`` (:func:`sample_frame_indices` gives the
  original frame number of each);
* **space**: integer pixels of the resized frame (:func:`model_frame_size`), the
  coordinate space of ``stvg_lab.answer``.

Two mappings connect that grid to a :class:`~stvg_lab.data.sample.Sample`'s original frames
and pixels:

* :func:`tube_to_model` (ground truth -> targets and rewards): the span is the kept frames
  that fall inside the tube; boxes are scaled per axis.
* :func:`answer_to_tube` (prediction -> evaluation): sampled index ``k`` stands for the
  original frames centred on ``frame_numbers[k]``, from half-way after the previous kept
  frame to just before half-way to the next (the first index from frame 0, the last to the
  video's last frame); boxes are scaled back and linearly interpolated between kept frames.

Round trip ``tube_to_model -> answer_to_tube`` of a tube on original frames ``a..b``
gives ``a' .. b'`` with ``|a' - a|`` and ``|b' - b|`` at most half a sampling step (``step
= fps / target_fps``, 15 frames for 30 fps), plus one frame where the steps alternate
(12/13 at 25 fps), early or late: unbiased, so tIoU against the original annotation drops
by up to about ``step / len(tube)`` even for a perfect prediction. Covering only the frames
*after* each kept one would make every prediction late by half a step on average.
``tests/test_video.py`` checks the bound for 8, 24, 25, 29.97 and 30 fps.

Frame-count policy (HC-STVG's ``img_num`` does not always equal the number of frames a
decoder returns): a difference of at most :func:`frame_count_tolerance` frames (2 %, at
least 2) is accepted; a sampled index past the last decodable frame then reads that last
frame instead, with a warning saying how many indices were clamped. A larger difference
raises :class:`VideoError` naming the file and both counts. Indices are never dropped, so
``T`` and the index -> frame mapping always match :func:`sample_frame_indices`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from stvg_lab.answer import PromptSpec
from stvg_lab.geometry import clip_boxes

if TYPE_CHECKING:
    from stvg_lab.data.sample import Sample

logger = logging.getLogger(__name__)

TARGET_FPS = 2.0  # paper §4
MAX_SIDE = 336  # paper §4
PATCH_FACTOR = 28  # Qwen2.5-VL: patch 14 x spatial merge 2
FRAME_COUNT_TOLERANCE = 0.02  # fraction of the annotated frame count; see frame_count_tolerance
MIN_FRAME_TOLERANCE = 2


class VideoError(RuntimeError):
    """A video file exists but cannot be decoded as the annotation describes."""


def frame_count_tolerance(num_frames: int) -> int:
    """How many frames a decoded count may differ from the annotated one: 2 %, at least 2.

    600-frame HC-STVG videos may lose up to 12 frames (0.4 s, less than one 2 fps step).
    """
    return max(MIN_FRAME_TOLERANCE, int(math.floor(FRAME_COUNT_TOLERANCE * num_frames)))


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def model_frame_size(width: int, height: int, max_side: int = MAX_SIDE, factor: int = PATCH_FACTOR) -> tuple[int, int]:
    """The ``(w, h)`` of the frames the model sees (paper §4 plus Qwen2.5-VL's grid).

    1. Scale by ``min(1, max_side / max(width, height))``: longer side at most ``max_side``,
       aspect kept, never upscaled.
    2. Round each side to the nearest multiple of ``factor`` (halves round up), at least
       ``factor`` and at most the largest multiple of ``factor`` not above ``max_side``
       (Qwen2.5-VL's ``smart_resize`` rounding; 336 = 12 x 28 so a 336 side stays 336).

    Step 2 can move the aspect ratio slightly (640x360 -> 336x196) and, for frames under
    ``factor`` pixels or not on the grid, enlarge a side by up to ``factor / 2``; boxes are
    scaled per axis, so that costs nothing in coordinates.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    if max_side < factor:
        raise ValueError(f"max_side={max_side} is smaller than the patch factor {factor}")
    scale = min(1.0, max_side / max(width, height))
    cap = (max_side // factor) * factor
    w, h = (min(cap, max(factor, _round_half_up(side * scale / factor) * factor)) for side in (width, height))
    return w, h


def sample_frame_indices(num_frames: int, fps: float, target_fps: float = TARGET_FPS) -> np.ndarray:
    """Original frame numbers of the kept frames, ``(T,)`` int64, strictly increasing.

    Rule: kept frame ``k`` is ``floor(k * fps / target_fps + 0.5)`` (the frame nearest to
    time ``k / target_fps``, halves rounding up), for ``k = 0, 1, ...`` while it is
    ``< num_frames``. So 30 fps keeps 0, 15, 30, ...; 25 fps keeps 0, 13, 25, 38, 50, ...;
    29.97 fps keeps 0, 15, ..., 495 (k = 33), then 509, 524, ... (one frame earlier than
    15 k from 17 s on). The rate is never changed: a video slower than
    ``target_fps`` raises ``ValueError`` rather than repeating frames.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps}")
    if not target_fps > 0:
        raise ValueError(f"target_fps must be positive, got {target_fps}")
    if target_fps > fps:
        raise ValueError(
            f"cannot sample at {target_fps:g} fps from a {fps:g} fps video without repeating frames; "
            f"use target_fps <= {fps:g}"
        )
    step = fps / target_fps
    k = np.arange(int(math.ceil(num_frames / step)) + 1, dtype=np.float64)
    idx = np.floor(k * step + 0.5).astype(np.int64)
    return idx[idx < num_frames]


@dataclass(frozen=True)
class VideoInfo:
    """What the decoder reports about a file (not what the annotation says)."""

    path: str
    num_frames: int
    fps: float
    width: int
    height: int


def _import_decord():
    try:
        import decord
    except ImportError as e:  # decord has no wheel for some platforms (e.g. macOS arm64)
        raise ImportError(
            "decoding videos needs the 'decord' package (pip install decord); "
            "it has wheels for Linux x86_64 and Windows"
        ) from e
    return decord


def _open_reader(path: str | Path, size: tuple[int, int] | None = None):
    """A decord ``VideoReader`` resizing to ``size = (w, h)`` inside the decoder."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    decord = _import_decord()
    kwargs = {} if size is None else {"width": int(size[0]), "height": int(size[1])}
    try:
        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, **kwargs)
    except Exception as e:  # decord raises DECORDError (a RuntimeError) or others on junk input
        raise VideoError(f"{path}: cannot open as a video ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    if len(vr) == 0:
        raise VideoError(f"{path}: the decoder finds no frames in this file")
    return vr


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count, average fps and native size as the decoder sees them (decodes one frame)."""
    vr = _open_reader(path)
    try:
        h, w = vr[0].shape[:2]
    except Exception as e:
        raise VideoError(f"{path}: cannot decode the first frame ({e})") from e
    return VideoInfo(str(path), len(vr), float(vr.get_avg_fps()), int(w), int(h))


def _read_batch(vr, path: Path, frame_numbers: np.ndarray, size: tuple[int, int], max_missing: int) -> np.ndarray:
    """Decode ``frame_numbers`` from an open reader under the frame-count policy."""
    n = len(vr)
    idx = np.asarray(frame_numbers, dtype=np.int64)
    past = idx >= n
    if past.any():
        over = int(idx.max()) - (n - 1)
        if over > max_missing:
            raise VideoError(
                f"{path}: frame {int(idx.max())} was requested but only {n} frames decode "
                f"({over} past the end, tolerance {max_missing}); the annotation's frame count "
                f"or fps probably does not match this file"
            )
        logger.warning(
            "%s: %d sampled index(es) past the last decodable frame %d read that frame instead",
            path, int(past.sum()), n - 1,
        )
        idx = np.minimum(idx, n - 1)
    try:
        # get_batch seeks to each requested frame: only kept frames (and the frames between a
        # key frame and them) are decoded, not the whole video.
        frames = vr.get_batch(idx.tolist()).asnumpy()
    except Exception as e:
        raise VideoError(f"{path}: decoding frames {idx[:5].tolist()}... failed ({e})") from e
    w, h = size
    if frames.shape != (len(idx), h, w, 3) or frames.dtype != np.uint8:
        raise VideoError(f"{path}: decoder returned {frames.shape} {frames.dtype}, expected {(len(idx), h, w, 3)} uint8")
    return frames


def decode_frames(
    path: str | Path,
    frame_numbers: Sequence[int] | np.ndarray,
    size: tuple[int, int],
    *,
    max_missing: int | None = None,
) -> np.ndarray:
    """Decode the given original frames resized to ``size = (w, h)``: ``(T, h, w, 3)`` uint8 RGB.

    Only the requested frames are decoded (decord seeks). ``max_missing`` is how many frames
    past the last decodable one a request may reach (default :func:`frame_count_tolerance`
    of the decodable count); those read the last frame, with a warning; beyond it a
    :class:`VideoError` is raised. Missing file: ``FileNotFoundError``; unreadable file:
    :class:`VideoError`; both name the path.
    """
    idx = np.asarray(frame_numbers, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("frame_numbers is empty")
    if (idx < 0).any():
        raise ValueError(f"frame numbers must be >= 0, got {int(idx.min())}")
    path = Path(path)
    vr = _open_reader(path, size)
    tol = frame_count_tolerance(len(vr)) if max_missing is None else int(max_missing)
    return _read_batch(vr, path, idx, size, tol)


@dataclass
class Clip:
    """The model's view of one sample's video.

    ``frames`` ``(T, h, w, 3)`` uint8; ``frame_numbers`` ``(T,)`` original frame of each;
    ``timestamps`` ``(T,)`` seconds (``frame_numbers / video_fps``); ``size`` ``(w, h)`` of
    the model frame; ``fps`` the sampling rate (2.0); ``video_fps`` and ``num_frames`` those of
    the annotated original.
    """

    sample_id: str
    frames: np.ndarray
    frame_numbers: np.ndarray
    timestamps: np.ndarray
    size: tuple[int, int]
    fps: float
    video_fps: float
    num_frames: int

    def prompt_spec(self) -> PromptSpec:
        """What ``stvg_lab.answer.build_prompt`` tells the model about these frames."""
        return PromptSpec(num_frames=len(self.frame_numbers), width=self.size[0], height=self.size[1], fps=self.fps)


def load_clip(sample: "Sample", target_fps: float = TARGET_FPS, max_side: int = MAX_SIDE) -> Clip:
    """Sample ``sample.video`` at ``target_fps`` and resize to :func:`model_frame_size`.

    Checks the decodable frame count against ``sample.num_frames`` (module docstring policy).
    """
    if not sample.video:
        raise ValueError(f"sample {sample.id!r} has no video path; load the annotations with a video_dir")
    path = Path(sample.video)
    frame_numbers = sample_frame_indices(sample.num_frames, sample.fps, target_fps)
    size = model_frame_size(sample.width, sample.height, max_side)
    vr = _open_reader(path, size)
    n, tol = len(vr), frame_count_tolerance(sample.num_frames)
    if abs(n - sample.num_frames) > tol:
        raise VideoError(
            f"{path}: sample {sample.id!r} annotates {sample.num_frames} frames but {n} decode "
            f"(tolerance {tol}); check the annotation's img_num / frame_count for this video"
        )
    if n != sample.num_frames:
        logger.debug("%s: %d frames decode, %d annotated (within tolerance)", path, n, sample.num_frames)
    frames = _read_batch(vr, path, frame_numbers, size, tol)
    return Clip(
        sample_id=sample.id,
        frames=frames,
        frame_numbers=frame_numbers,
        timestamps=frame_numbers / float(sample.fps),
        size=size,
        fps=float(target_fps),
        video_fps=float(sample.fps),
        num_frames=int(sample.num_frames),
    )


def _scale(boxes: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    # boxes (..., 4) x1y1x2y2; per-axis factors because model_frame_size may change the aspect
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return boxes * np.array([sx, sy, sx, sy])


def _interpolate(anchor_frames: np.ndarray, anchor_boxes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Boxes at ``frames`` ``(F,)`` by linear interpolation between anchors, held at the ends.

    ``anchor_frames`` ``(M,)`` strictly increasing, ``anchor_boxes`` ``(M, 4)``; returns ``(F, 4)``.
    """
    return np.stack([np.interp(frames, anchor_frames, anchor_boxes[:, j]) for j in range(4)], axis=-1)


def tube_to_model(
    sample: "Sample", frame_numbers: Sequence[int] | np.ndarray, size: tuple[int, int]
) -> tuple[tuple[int, int], dict[int, list[float]]]:
    """Ground-truth span (sampled indices, inclusive) and boxes (model pixels) of ``sample``.

    * Span: the kept frames whose original frame number lies in the tube's
      ``[first, last]``. A tube shorter than the sampling step may hold none; then the span
      is the single kept frame nearest the tube's centre ``(first + last) / 2`` (the earlier
      on a tie), so every sample has a target.
    * Boxes: the tube's box at each kept frame in the span (linearly interpolated where the
      annotation skips frames, held outside it), scaled per axis from ``sample.width x
      sample.height`` to ``size`` and clipped to the frame; floats, not rounded.
    """
    if not sample.tube:
        raise ValueError(f"sample {sample.id!r}: the tube is empty")
    fn = np.asarray(frame_numbers, dtype=np.int64)
    tube_frames = np.array(sorted(sample.tube), dtype=np.int64)
    tube_boxes = np.array([sample.tube[int(f)] for f in tube_frames], dtype=np.float64)
    first, last = int(tube_frames[0]), int(tube_frames[-1])
    inside = np.flatnonzero((fn >= first) & (fn <= last))
    if inside.size:
        s, e = int(inside[0]), int(inside[-1])
    else:
        s = e = int(np.argmin(np.abs(fn - (first + last) / 2.0)))
    ks = np.arange(s, e + 1)
    boxes = _interpolate(tube_frames, tube_boxes, fn[ks].astype(np.float64))
    boxes = clip_boxes(_scale(boxes, (sample.width, sample.height), size), size[0], size[1])
    return (s, e), {int(k): [float(v) for v in b] for k, b in zip(ks, boxes)}


def answer_to_tube(
    span: tuple[int, int],
    boxes_by_index: Mapping[int, Sequence[float]],
    frame_numbers: Sequence[int] | np.ndarray,
    num_frames: int,
    orig_size: tuple[int, int],
    model_size: tuple[int, int],
) -> dict[int, list[float]]:
    """A predicted tube on original frames and pixels from an answer on the model's grid.

    * Span ``(s, e)`` (clipped to ``0 .. T-1``): each kept frame stands for the original
      frames *centred* on it, from half-way after the previous kept frame to just before
      half-way to the next one (the first from frame 0, the last to ``num_frames - 1``).
      Centring makes the mapping unbiased: a perfect answer's ends land within half a
      sampling step of the annotation, early or late, instead of always up to a step late.
    * Boxes: each given index ``k`` in ``0 .. T-1`` (inside the span or not) is an anchor at
      original frame ``frame_numbers[k]``, scaled from ``model_size`` to ``orig_size``;
      every frame of the span gets the linear interpolation of the anchors, held constant
      before the first and after the last; boxes are clipped to the frame. Indices missing
      from the answer are thereby interpolated too.
    * A span wholly outside ``0 .. T-1``, or no anchor in range, gives ``{}`` (no prediction).
    """
    fn = np.asarray(frame_numbers, dtype=np.int64)
    t = len(fn)
    s, e = max(int(span[0]), 0), min(int(span[1]), t - 1)
    if s > e:
        return {}
    keys = sorted(k for k in boxes_by_index if 0 <= int(k) < t)
    if not keys:
        return {}
    start = 0 if s == 0 else int(fn[s - 1] + fn[s] + 1) // 2
    end = int(num_frames) - 1 if e == t - 1 else int(fn[e] + fn[e + 1] + 1) // 2 - 1
    anchors = _scale(np.array([boxes_by_index[k] for k in keys], dtype=np.float64), model_size, orig_size)
    frames = np.arange(start, end + 1)
    boxes = clip_boxes(_interpolate(fn[keys].astype(np.float64), anchors, frames.astype(np.float64)), *orig_size)
    return {int(f): [float(v) for v in b] for f, b in zip(frames, boxes)}


def reward_columns(sample: "Sample", frame_numbers: Sequence[int] | np.ndarray, size: tuple[int, int]) -> dict:
    """The GRPO dataset columns the reward functions read (model grid, see :func:`tube_to_model`).

    ``gt_span``: ``[s, e]`` inclusive sampled indices; ``gt_tube``: rows ``[k, x1, y1, x2, y2]``
    for ``k = s .. e``; ``frame_size``: ``[w, h]`` of the model frame. In an Arrow dataset
    ``gt_tube`` becomes ``list<list<float64>>``, so ``k`` comes back as a float: use ``int(row[0])``.
    """
    (s, e), boxes = tube_to_model(sample, frame_numbers, size)
    return {
        "gt_span": [s, e],
        "gt_tube": [[int(k), *boxes[k]] for k in range(s, e + 1)],
        "frame_size": [int(size[0]), int(size[1])],
    }
