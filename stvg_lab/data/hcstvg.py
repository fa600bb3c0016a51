"""HC-STVG v1 / v2 raw annotation files -> :class:`~stvg_lab.data.sample.Sample` (paper §4, Tab. 1).

Layout (``tests/fixtures/formats/README.md`` §1): one JSON object keyed by the video file name
with its extension, ``{"12_abc.mp4": {"st_frame", "ed_frame", "st_time", "ed_time", "img_num",
"img_size": [h, w], "bbox": [[x, y, w, h], ...], "English"}}``. v1 has ``caption`` for
``English``, ``width``/``height`` for ``img_size``, and may lack ``ed_frame``. The v2 test split
(``query_v2.json``, ``{video_file: sentence}``) holds no ground truth and is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from stvg_lab.data.conventions import (
    HCSTVG_CONVENTIONS,
    VideoFinder,
    as_int,
    as_number,
    check_convention,
    fit_box,
    hcstvg_box_frames,
)
from stvg_lab.data.errors import SKIP_HINT, AnnotationError, LoadedSamples, finish_loading, read_json
from stvg_lab.data.sample import Sample

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".webm", ".mov")
_QUERY_FIELD = {1: "caption", 2: "English"}
_SIZE_FIELDS = {1: ("width", "height"), 2: ("img_size",)}
_COMMON_FIELDS = ("st_frame", "bbox", "img_num", "st_time", "ed_time")


def load_hcstvg(
    annotation_file: str | Path,
    video_dir: str | Path | None = None,
    version: int = 2,
    convention: str = "official",
    clip_seconds: float = 20.0,
    skip_bad: bool = False,
) -> LoadedSamples:
    """Load an HC-STVG v1 or v2 annotation file as one :class:`Sample` per row, in file order.

    * ``id`` is the key without its extension (``"12_abc.mp4"`` -> ``"12_abc"``); ``video`` is
      ``video_dir / key`` (else the file of that name anywhere below ``video_dir``, as TubeDETR
      finds v2's sub-folders), or None without ``video_dir``.
    * ``fps = img_num / clip_seconds``: every real HC-STVG video lasts 20 s (TubeDETR, STCAT and
      CG-STVG assume this); the synthetic benchmark passes its own clip length.
    * The tube maps 0-based decoded frames to ``[x1, y1, x2, y2]`` pixels (from ``[x, y, w, h]``)
      under ``convention`` (see :mod:`stvg_lab.data.conventions`): ``"official"`` frames
      ``st_frame-1 .. ed_frame-1``; ``"stcat"`` ``st_frame-1 .. st_frame-1+len(bbox)-1``;
      ``"tubedetr"`` ``st_frame .. st_frame+len(bbox)-1``. Under ``"tubedetr"`` a tube that
      ends on the video's last frame (``ed_frame == img_num``) puts its last box on frame
      ``img_num``, which does not exist: that box is dropped, listed in
      ``extras["dropped_frames"]`` and counted in an INFO log line.
    * Boxes overshooting the frame are clipped when at least half their area is inside
      (counted in ``extras["clipped_boxes"]``); see :func:`~stvg_lab.data.conventions.fit_box`.
    * ``extras``: ``key``, ``st_time``/``ed_time`` (the file's seconds), ``st_frame``/``ed_frame``
      (the file's 1-based numbers; ``ed_frame`` None when absent), ``convention``,
      ``clip_seconds``, ``clipped_boxes``, ``dropped_frames``.

    A bad row (missing or mistyped field, ``len(bbox) != ed_frame - st_frame + 1``, a tube past
    ``img_num``, a box with ``w <= 0`` or ``h <= 0`` or mostly outside the frame, a video
    missing under ``video_dir``, a duplicate id) raises :class:`AnnotationError` naming the
    file, key and field; with ``skip_bad=True`` it is left out and reported in the result's
    ``.skipped``. Invalid JSON, a file that is not an object keyed by video, and the v2 test
    split always raise. Bad arguments raise ValueError; a missing file or ``video_dir``
    raises FileNotFoundError.
    """
    if version not in _QUERY_FIELD:
        raise ValueError(f"load_hcstvg: version must be 1 or 2; got {version!r}")
    check_convention(convention, HCSTVG_CONVENTIONS, "load_hcstvg")
    if not (isinstance(clip_seconds, (int, float)) and clip_seconds > 0):
        raise ValueError(f"load_hcstvg: clip_seconds must be a positive number of seconds; got {clip_seconds!r}")
    path = Path(annotation_file)
    data = read_json(path, what="HC-STVG annotation file")
    _check_layout(path, data, version)
    finder = VideoFinder(video_dir) if video_dir is not None else None

    samples: list[Sample] = []
    skipped = []
    key_of_id: dict[str, str] = {}
    for key, record in data.items():
        try:
            sample = _parse_row(path, key, record, version, convention, float(clip_seconds), finder)
            if sample.id in key_of_id:
                raise AnnotationError(
                    path, repr(key), "key", f"gives video id {sample.id!r}, already used by row {key_of_id[sample.id]!r}"
                )
        except AnnotationError as e:
            if not skip_bad:
                raise
            skipped.append(e.to_skipped())
            continue
        key_of_id[sample.id] = key
        samples.append(sample)

    n_dropped = sum(1 for s in samples if s.extras["dropped_frames"])
    if n_dropped:
        logger.info(
            "%s: convention 'tubedetr' shifts %d tubes ending on the last frame past it; "
            "dropped their box on the non-existent frame img_num (extras['dropped_frames'])",
            path,
            n_dropped,
        )
    return finish_loading(path, samples, skipped, "rows")


def _check_layout(path: Path, data: Any, version: int) -> None:
    """Refuse files that are not ``{video_file: record}``: lists, the v2 test split, empty files."""
    if isinstance(data, list):
        raise AnnotationError(
            path,
            None,
            None,
            "the top level is a JSON list, but an HC-STVG annotation file is an object keyed by video file name "
            "(a list is a VidSTG sentence file or TubeDETR's preprocessed *_proc.json)",
            "pass the raw anno_v2/train_v2.json or val_v2.json (v2), or train.json / test.json (v1)",
        )
    if not isinstance(data, dict) or not data:
        raise AnnotationError(
            path,
            None,
            None,
            "expected a non-empty JSON object keyed by video file name",
            "pass a raw HC-STVG annotation file (v2: train_v2.json / val_v2.json; v1: train.json / test.json)",
        )
    if all(isinstance(v, str) for v in data.values()):
        raise AnnotationError(
            path,
            None,
            None,
            "maps each video to a sentence only ({video_file: sentence}): this is the HC-STVG v2 test split "
            "(query_v2.json), which has no ground-truth tubes",
            "HC-STVG v2 is evaluated on the val split; pass anno_v2/val_v2.json",
        )


def _parse_row(
    path: Path,
    key: str,
    record: Any,
    version: int,
    convention: str,
    clip_seconds: float,
    finder: VideoFinder | None,
) -> Sample:
    """One validated row -> Sample; raises AnnotationError naming ``key`` and the field."""
    row = repr(key)

    def bad(field: str | None, problem: str, hint: str = SKIP_HINT) -> AnnotationError:
        return AnnotationError(path, row, field, problem, hint)

    if not isinstance(record, dict):
        raise bad(None, f"is a JSON {type(record).__name__}, not an object with fields {', '.join(_COMMON_FIELDS)}, ...")
    suffix = Path(key).suffix.lower()
    if suffix not in VIDEO_SUFFIXES or len(key) <= len(suffix):
        raise bad("key", f"{key!r} is not a video file name ending in {', '.join(VIDEO_SUFFIXES)}")
    video_id = key[: -len(suffix)]

    query_field = _QUERY_FIELD[version]
    required = _COMMON_FIELDS + (query_field,) + _SIZE_FIELDS[version]
    missing = [f for f in required if f not in record]
    if missing:
        other = 3 - version
        looks_other = _QUERY_FIELD[other] in record or _SIZE_FIELDS[other][0] in record
        hint = f"this row looks like HC-STVG v{other}; pass version={other}" if looks_other else SKIP_HINT
        raise bad(missing[0], f"missing (the row has {', '.join(sorted(record))})", hint)

    query = record[query_field]
    if not isinstance(query, str) or not query.strip():
        raise bad(query_field, f"must be a non-empty sentence; got {query!r}")
    img_num = as_int(record["img_num"])
    if img_num is None or img_num <= 0:
        raise bad("img_num", f"must be a positive frame count; got {record['img_num']!r}")
    width, height = _frame_size(record, version, bad)

    st_frame = as_int(record["st_frame"])
    if st_frame is None or st_frame < 1:
        raise bad("st_frame", f"must be a 1-based frame number >= 1; got {record['st_frame']!r}")
    bbox = record["bbox"]
    if not isinstance(bbox, list) or not bbox:
        raise bad("bbox", "must be a non-empty list of [x, y, w, h] boxes, one per frame")
    n = len(bbox)
    ed_raw = record.get("ed_frame")
    if ed_raw is not None:
        ed_frame = as_int(ed_raw)
        if ed_frame is None:
            raise bad("ed_frame", f"must be a 1-based frame number; got {ed_raw!r}")
        if ed_frame - st_frame + 1 != n:
            raise bad(
                "bbox",
                f"has {n} boxes, but st_frame..ed_frame = {st_frame}..{ed_frame} is {ed_frame - st_frame + 1} frames "
                "(one box per frame, ed_frame inclusive)",
            )
    last = st_frame + n - 1  # 1-based, official convention
    if last > img_num:
        raise bad(
            "ed_frame" if ed_raw is not None else "bbox",
            f"the tube runs to frame {last} (1-based: st_frame={st_frame} plus {n} boxes), past the video's img_num={img_num} frames",
        )
    st_time, ed_time = as_number(record["st_time"]), as_number(record["ed_time"])
    if st_time is None or st_time < 0:
        raise bad("st_time", f"must be a non-negative number of seconds; got {record['st_time']!r}")
    if ed_time is None or ed_time < st_time:
        raise bad("ed_time", f"must be a number of seconds >= st_time={st_time:g}; got {record['ed_time']!r}")

    boxes: list[list[float]] = []
    n_clipped = 0
    for i, raw in enumerate(bbox):
        xywh = [as_number(v) for v in raw] if isinstance(raw, list) and len(raw) == 4 else None
        if xywh is None or None in xywh:
            raise bad(f"bbox[{i}]", f"must be 4 finite numbers [x, y, w, h]; got {raw!r}")
        x, y, w, h = xywh
        if w <= 0 or h <= 0:
            raise bad(f"bbox[{i}]", f"[x, y, w, h] = {raw!r} has non-positive w or h")
        try:
            box, clipped = fit_box([x, y, x + w, y + h], width, height)
        except ValueError as e:
            raise bad(f"bbox[{i}]", f"{e} (from [x, y, w, h] = {raw!r})") from None
        boxes.append(box)
        n_clipped += clipped

    tube: dict[int, list[float]] = {}
    dropped: list[int] = []
    for frame, box in zip(hcstvg_box_frames(st_frame, n, convention), boxes):
        # Only "tubedetr" can reach frame img_num (checked above in official numbering).
        if frame >= img_num:
            dropped.append(frame)
        else:
            tube[frame] = box
    if not tube:
        raise bad("bbox", f"under convention {convention!r} the tube's only box falls on frame {img_num}, past the last frame")

    video = None
    if finder is not None:
        found = finder.find(key)
        if found is None:
            raise bad(
                "video",
                f"video {key!r} not found: no {finder.root / key} and no file named {key!r} below {finder.root}",
                "put the video there, fix video_dir, or pass skip_bad=True to skip rows without a video",
            )
        video = str(found)

    return Sample(
        id=video_id,
        video=video,
        query=query,
        fps=img_num / clip_seconds,
        num_frames=img_num,
        width=width,
        height=height,
        tube=tube,
        dataset=f"hcstvg-v{version}",
        extras={
            "key": key,
            "st_time": st_time,
            "ed_time": ed_time,
            "st_frame": st_frame,
            "ed_frame": as_int(ed_raw) if ed_raw is not None else None,
            "convention": convention,
            "clip_seconds": clip_seconds,
            "clipped_boxes": n_clipped,
            "dropped_frames": dropped,
        },
    )


def _frame_size(record: dict, version: int, bad) -> tuple[int, int]:
    """``(width, height)``: v2's ``img_size`` is ``[height, width]``; v1 has ``width`` and ``height``."""
    if version == 2:
        size = record["img_size"]
        hw = [as_int(v) for v in size] if isinstance(size, list) and len(size) == 2 else None
        if hw is None or None in hw or min(hw) <= 0:
            raise bad("img_size", f"must be [height, width] in positive pixels; got {size!r}")
        return hw[1], hw[0]
    width, height = as_int(record["width"]), as_int(record["height"])
    if width is None or width <= 0:
        raise bad("width", f"must be a positive number of pixels; got {record['width']!r}")
    if height is None or height <= 0:
        raise bad("height", f"must be a positive number of pixels; got {record['height']!r}")
    return width, height
