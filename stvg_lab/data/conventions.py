"""Frame-index and box conventions of the published STVG code, selectable per loader.

Published code disagrees on which decoded frame an annotation's frame numbers name
(``tests/fixtures/formats/README.md``). Every convention here maps to **0-based
decoded-frame indices**, the frame numbers :class:`~stvg_lab.data.sample.Sample` uses.

HC-STVG (``st_frame``, ``ed_frame`` are 1-based inclusive; one box per frame):

* ``official`` (default; the dataset's README, 2D-TAN): boxes on frames
  ``st_frame-1 .. ed_frame-1``.
* ``stcat`` (STCAT, CG-STVG, TA-STVG): ``st_frame-1 .. st_frame-1+len(bbox)-1``; the same
  frames as ``official`` whenever ``len(bbox) == ed_frame-st_frame+1``, which the loader checks.
* ``tubedetr`` (TubeDETR): ``st_frame .. st_frame+len(bbox)-1``, i.e. ``[st_frame,
  st_frame+len(bbox))``, one frame later; a tube ending on the last frame then puts its last
  box on frame ``img_num``, which does not exist (the loader drops that box).

VidSTG (``temporal_gt`` ``begin_fid``/``end_fid``; VidOR boxes indexed by 0-based frame):

* ``exclusive`` (default; TubeDETR): ``range(begin_fid, min(end_fid, frame_count))``.
* ``inclusive`` (STCAT, CG-STVG): ``range(begin_fid, min(end_fid+1, frame_count))``.

Box tolerance: real annotations overshoot the frame by a pixel or two. A box is clipped to
``[0, width] x [0, height]`` when at least :data:`MIN_INSIDE_FRACTION` of its area lies
inside the frame; a box mostly (or wholly) outside, or with ``x2 <= x1`` or ``y2 <= y1``, is
an error.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

HCSTVG_CONVENTIONS: tuple[str, ...] = ("official", "stcat", "tubedetr")
VIDSTG_CONVENTIONS: tuple[str, ...] = ("exclusive", "inclusive")

# Half the box inside the frame: a 1-2 px overshoot keeps >95 % inside, while a box drawn on
# the wrong frame size (e.g. width and height swapped) usually keeps far less.
MIN_INSIDE_FRACTION = 0.5


def check_convention(convention: str, allowed: tuple[str, ...], loader: str) -> str:
    """Return ``convention`` if it is one of ``allowed``; raise ValueError naming the choices otherwise."""
    if convention not in allowed:
        raise ValueError(f"{loader}: convention must be one of {', '.join(map(repr, allowed))}; got {convention!r}")
    return convention


def hcstvg_box_frames(st_frame: int, n_boxes: int, convention: str) -> range:
    """0-based decoded frame of each of the ``n_boxes`` boxes of an HC-STVG row whose first is ``st_frame``.

    ``official`` and ``stcat`` agree whenever ``len(bbox) == ed_frame - st_frame + 1``, which the
    loader checks; ``tubedetr`` is both shifted one frame later. The range is not clamped:
    under ``tubedetr`` its last frame can be ``img_num`` (see :func:`load_hcstvg`).
    """
    check_convention(convention, HCSTVG_CONVENTIONS, "hcstvg_box_frames")
    start = st_frame if convention == "tubedetr" else st_frame - 1
    return range(start, start + n_boxes)


def vidstg_gt_frames(begin_fid: int, end_fid: int, frame_count: int, convention: str) -> range:
    """Ground-truth frames of a VidSTG ``temporal_gt``, clamped to the video's ``frame_count`` frames.

    ``exclusive`` (TubeDETR) excludes ``end_fid``; ``inclusive`` (STCAT / CG-STVG) includes it
    unless it is ``frame_count`` (a frame that does not exist; 768 real test entries).
    """
    check_convention(convention, VIDSTG_CONVENTIONS, "vidstg_gt_frames")
    stop = end_fid if convention == "exclusive" else end_fid + 1
    return range(begin_fid, min(stop, frame_count))


def as_int(value: Any) -> int | None:
    """``value`` as an int if it is a JSON integer (or an integral float), else None; bools are not ints."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_number(value: Any) -> float | None:
    """``value`` as a finite float if it is a JSON number, else None; bools are not numbers."""
    # Exact type checks: json gives plain int/float, and type(True) is bool, not int.
    kind = type(value)
    if kind is int:
        return float(value)
    if kind is float:
        return value if math.isfinite(value) else None
    return None


def fit_box(box: list[float], width: int, height: int) -> tuple[list[float], bool]:
    """Return ``(box clipped to the frame, whether it was clipped)`` for an ``[x1, y1, x2, y2]`` pixel box.

    Raises ValueError (the caller adds file, row and field) if ``x2 <= x1`` or ``y2 <= y1``,
    or if less than :data:`MIN_INSIDE_FRACTION` of the box's area lies in the frame.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"box [x1, y1, x2, y2] = {_fmt([x1, y1, x2, y2])} has non-positive width or height")
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    clipped = [cx1, cy1, cx2, cy2]
    if clipped == [x1, y1, x2, y2]:
        return clipped, False
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0) / ((x2 - x1) * (y2 - y1))
    if inside < MIN_INSIDE_FRACTION:
        raise ValueError(
            f"box [x1, y1, x2, y2] = {_fmt(box)} lies mostly outside the {width} x {height} frame "
            f"({inside:.0%} inside; boxes with at least {MIN_INSIDE_FRACTION:.0%} inside are clipped)"
        )
    return clipped, True


def _fmt(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


class VideoFinder:
    """Where a row's video lies under ``video_dir``: at the row's relative path, else by file name below it.

    The fallback (TubeDETR's ``vid2path``) covers the real layouts: HC-STVG v2 videos sit in
    sub-folders that the annotation keys do not name, and CG-STVG keeps VidSTG videos flat as
    ``videos/<vid>.mp4``. The tree is walked once, on the first miss; when two files share a
    name the first in sorted path order wins.
    """

    def __init__(self, video_dir: str | Path) -> None:
        self.root = Path(video_dir)
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"video_dir {self.root} is not a directory; pass the folder that holds the videos, or video_dir=None"
            )
        self._by_name: dict[str, Path] | None = None

    def find(self, relpath: str) -> Path | None:
        """Path of the video ``relpath`` (e.g. ``"0000/123.mp4"`` or ``"12_x.mp4"``), or None if absent."""
        direct = self.root / relpath
        if direct.is_file():
            return direct
        if self._by_name is None:
            self._by_name = {}
            for path in sorted(p for p in self.root.rglob("*") if p.is_file()):
                self._by_name.setdefault(path.name, path)
        return self._by_name.get(Path(relpath).name)
