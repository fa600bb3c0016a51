"""VidSTG sentence files + VidOR box files -> :class:`~stvg_lab.data.sample.Sample` (paper §4, Tab. 2).

Layout (``tests/fixtures/formats/README.md`` §2): the sentence file
(``annotations/{train,val,test}_annotations.json``) is a list of entries with ``vid``, ``fps``,
``frame_count``, ``width``, ``height``, ``used_segment``, ``temporal_gt`` (end excluded),
``used_relation``, ``subject/objects``, ``captions`` and ``questions``. It holds no boxes: they
come from VidOR's per-video files ``<group>/<vid>.json`` (``trajectories[frame]`` = list of
``{"tid", "bbox": {"xmin", "ymin", "xmax", "ymax"}}``). VidSTG test uses VidOR
``annotation/validation``; VidSTG train and val use VidOR ``annotation/training``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm import tqdm

from stvg_lab.data.conventions import (
    VIDSTG_CONVENTIONS,
    VideoFinder,
    as_int,
    as_number,
    check_convention,
    fit_box,
    vidstg_gt_frames,
)
from stvg_lab.data.errors import SKIP_HINT, AnnotationError, LoadedSamples, SkippedRow, finish_loading, read_json
from stvg_lab.data.sample import Sample

logger = logging.getLogger(__name__)

DATASET_NAME = "vidstg"
ENTRY_FIELDS: tuple[str, ...] = (
    "vid",
    "fps",
    "frame_count",
    "width",
    "height",
    "used_segment",
    "temporal_gt",
    "subject/objects",
    "captions",
    "questions",
)
# (sentence list, qtype, id letter): captions are declarative, questions interrogative.
SENTENCE_KINDS: tuple[tuple[str, str, str], ...] = (("captions", "declarative", "d"), ("questions", "interrogative", "i"))
VIDOR_HINT = (
    "VidSTG test boxes are in VidOR annotation/validation, train and val boxes in annotation/training; "
    "pass that folder as vidor_dir"
)


@dataclass
class _Entry:
    index: int
    row: str
    raw: dict
    vid: str
    fps: float
    frame_count: int
    width: int
    height: int
    used_segment: tuple[int, int]
    temporal_gt: tuple[int, int]
    categories: dict[int, str]


@dataclass
class _VidorVideo:
    path: Path
    video_path: str | None
    trajectories: list
    _tracks: dict[int, dict[int, Any]] = field(default_factory=dict)
    # (tid, width, height) -> {frame: (box, clipped) or error text}: entries of one vid overlap,
    # so each box is validated once.
    _fitted: dict[tuple[int, int, int], dict[int, tuple[list[float], bool] | str]] = field(default_factory=dict)

    def track(self, tid: int) -> dict[int, Any]:
        """``{frame: raw bbox dict}`` of trajectory ``tid`` (built once per tid)."""
        if tid not in self._tracks:
            out: dict[int, Any] = {}
            for frame, boxes in enumerate(self.trajectories):
                for b in boxes if isinstance(boxes, list) else ():
                    if isinstance(b, dict) and as_int(b.get("tid")) == tid:
                        out.setdefault(frame, b.get("bbox"))
            self._tracks[tid] = out
        return self._tracks[tid]

    def fitted_box(self, tid: int, frame: int, width: int, height: int) -> tuple[list[float], bool] | str:
        """``(box clipped to the frame, clipped?)`` of ``tid`` on ``frame`` (which has one), or why it is bad."""
        cache = self._fitted.setdefault((tid, width, height), {})
        if frame not in cache:
            raw = self.track(tid)[frame]
            coords = [as_number(raw.get(c)) for c in ("xmin", "ymin", "xmax", "ymax")] if isinstance(raw, dict) else [None]
            if None in coords:
                cache[frame] = f"bbox must be {{'xmin', 'ymin', 'xmax', 'ymax'}} finite numbers; got {raw!r}"
            else:
                try:
                    cache[frame] = fit_box(coords, width, height)
                except ValueError as e:
                    cache[frame] = str(e)
        return cache[frame]


def index_vidor_files(vidor_dir: str | Path) -> dict[str, Path]:
    """``{video id: path}`` of every VidOR box file (``*.json``) below ``vidor_dir``, found by one walk.

    ``vidor_dir`` is VidOR's ``annotation/validation`` or ``annotation/training`` (files in
    ``<4-digit group>/<vid>.json``) or any folder above them. When two files share a video id
    the first in sorted path order wins and a warning is logged.
    """
    root = Path(vidor_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"vidor_dir {root} is not a directory; {VIDOR_HINT}")
    index: dict[str, Path] = {}
    for p in sorted(root.rglob("*.json")):
        if p.stem in index:
            logger.warning("VidOR box file %s duplicates %s; using the latter", p, index[p.stem])
            continue
        index[p.stem] = p
    if not index:
        raise FileNotFoundError(f"no VidOR box files (*.json) below {root}; {VIDOR_HINT}")
    return index


def load_vidstg(
    annotation_file: str | Path,
    vidor_dir: str | Path,
    video_dir: str | Path | None = None,
    convention: str = "exclusive",
    skip_bad: bool = False,
) -> LoadedSamples:
    """Load a VidSTG sentence file as one :class:`Sample` per sentence, in file order.

    * Each entry gives one ``qtype="declarative"`` sample per caption, then one
      ``"interrogative"`` sample per question, all sharing the entry's ``temporal_gt``.
      ``target_id`` picks the VidOR trajectory with that ``tid``; the tube is that trajectory
      cut to the ground-truth frames of ``convention`` (see :mod:`stvg_lab.data.conventions`):
      ``"exclusive"`` (TubeDETR) ``[begin_fid, end_fid)``, ``"inclusive"`` (STCAT / CG-STVG)
      ``[begin_fid, end_fid]``; both clamped to the ``frame_count`` frames that exist.
    * Ground-truth frames without a box of the target: the first frame and the last frame
      of ``[begin_fid, end_fid)`` must have one, else the sentence is an error (TubeDETR's
      preprocessing asserts the same), so the tube's span is the ground-truth moment. Under
      ``"inclusive"`` a missing box on the extra frame ``end_fid`` repeats the previous box, as
      STCAT does (``extras["repeated_frames"]``). A missing box strictly inside is left out of
      the tube and listed in ``extras["missing_box_frames"]`` (TubeDETR would raise KeyError on
      it if sampled; STCAT calls the pair "spoiled"); the metrics then score such a frame, if
      evaluated, as IoU 0. A warning counts them.
    * ``id`` is ``f"{vid}_{begin_fid}_{end_fid}_{d|i}{k}"`` (k: index in captions or questions);
      if two entries share vid and ``temporal_gt``, the later gets ``f"_e{entry index}"`` appended.
    * ``video`` is ``video_dir / <VidOR video_path>`` (``<group>/<vid>.mp4``; else the file of that
      name anywhere below ``video_dir``), or None without ``video_dir``.
    * Boxes are VidOR's ``xmin, ymin, xmax, ymax`` pixels, clipped when at least half inside
      the frame (``extras["clipped_boxes"]``).
    * ``extras``: ``qtype``, ``sentence_type`` (person/object), ``target_id``, ``category``,
      ``vid``, ``entry_index``, ``sentence_index``, ``used_segment`` and ``temporal_gt`` as
      ``[begin_fid, end_fid]`` from the file, ``convention``, ``clipped_boxes``,
      ``missing_box_frames``, ``repeated_frames``.

    Errors: a bad entry-level field or a missing / invalid VidOR file makes every sentence
    of that entry bad; a bad sentence field (unknown ``target_id``, a trajectory that does
    not cover the moment, a bad box) only that sentence. Each raises
    :class:`AnnotationError` naming the file, ``entry <i> (vid <vid>, <captions|questions>[k])``
    and the field; with ``skip_bad=True`` it is reported in the result's ``.skipped``
    instead. Invalid JSON and a file that is not a list always raise.
    """
    check_convention(convention, VIDSTG_CONVENTIONS, "load_vidstg")
    path = Path(annotation_file)
    data = read_json(path, what="VidSTG sentence file")
    _check_layout(path, data)
    vidor_index = index_vidor_files(vidor_dir)
    finder = VideoFinder(video_dir) if video_dir is not None else None

    # Sort keys (entry index, sentence order) keep the skip report in file order.
    skipped: list[tuple[tuple[int, int], SkippedRow]] = []
    per_entry: dict[int, list[tuple[int, Sample]]] = {}

    def reject(err: AnnotationError, order: tuple[int, int]) -> None:
        if not skip_bad:
            raise err
        skipped.append((order, err.to_skipped()))

    by_vid: dict[str, list[_Entry]] = defaultdict(list)
    for i, raw in enumerate(data):
        try:
            entry = _parse_entry(path, i, raw)
        except AnnotationError as e:
            reject(e, (i, -1))
            continue
        by_vid[entry.vid].append(entry)

    # One VidOR file read per video (a vid can serve up to 40 entries), and only one held at a time.
    for vid, entries in tqdm(by_vid.items(), desc="VidOR box files", disable=len(by_vid) < 100, leave=False):
        try:
            video = _read_vidor(vidor_index, vid, entries[0])
            video_file = _video_file(video, vid, finder)
        except _EntryProblem as p:
            for entry in entries:
                reject(AnnotationError(path, entry.row, p.field, p.problem, p.hint), (entry.index, -1))
            continue
        for entry in entries:
            out = per_entry.setdefault(entry.index, [])
            for order, kind, qtype, k, sentence in _sentences(entry):
                try:
                    out.append((order, _sentence_sample(path, entry, kind, qtype, k, sentence, video, convention, video_file)))
                except AnnotationError as e:
                    reject(e, (entry.index, order))

    samples: list[Sample] = []
    used: set[str] = set()
    for index in sorted(per_entry):
        for _, sample in sorted(per_entry[index], key=lambda t: t[0]):
            if sample.id in used:
                sample.id = f"{sample.id}_e{index}"
            used.add(sample.id)
            samples.append(sample)

    n_gappy = sum(1 for s in samples if s.extras["missing_box_frames"])
    if n_gappy:
        logger.warning(
            "%s: %d samples lack a VidOR box on some frames inside the ground-truth moment; "
            "those frames are left out of their tubes (extras['missing_box_frames'])",
            path,
            n_gappy,
        )
    return finish_loading(path, samples, [r for _, r in sorted(skipped, key=lambda t: t[0])], "entries or sentences")


class _EntryProblem(Exception):
    """A problem shared by all entries of one vid (its VidOR file or video); becomes one AnnotationError each."""

    def __init__(self, field: str, problem: str, hint: str = SKIP_HINT) -> None:
        super().__init__(problem)
        self.field, self.problem, self.hint = field, problem, hint


def _check_layout(path: Path, data: Any) -> None:
    if isinstance(data, list):
        if not data:
            raise AnnotationError(path, None, None, "the sentence list is empty", "pass a VidSTG *_annotations.json file")
        return
    if isinstance(data, dict) and "videos" in data and "trajectories" in data:
        problem = "is TubeDETR's preprocessed file ({'videos', 'trajectories'}), not a raw VidSTG sentence file"
    else:
        problem = "the top level is not a JSON list of entries (an object keyed by video is an HC-STVG file)"
    raise AnnotationError(path, None, None, problem, "pass VidSTG's raw annotations/{train,val,test}_annotations.json")


def _parse_entry(path: Path, index: int, raw: Any) -> _Entry:
    """Validate the entry-level fields of sentence-file entry ``index``."""
    vid = raw.get("vid") if isinstance(raw, dict) else None
    row = f"entry {index} (vid {vid})" if isinstance(vid, str) else f"entry {index}"

    def bad(field: str | None, problem: str) -> AnnotationError:
        return AnnotationError(path, row, field, problem)

    if not isinstance(raw, dict):
        raise bad(None, f"is a JSON {type(raw).__name__}, not an object with fields {', '.join(ENTRY_FIELDS)}")
    missing = [f for f in ENTRY_FIELDS if f not in raw]
    if missing:
        raise bad(missing[0], f"missing (the entry has {', '.join(sorted(raw))})")
    if not isinstance(vid, str) or not vid:
        raise bad("vid", f"must be a VidOR video id string; got {vid!r}")
    fps = as_number(raw["fps"])
    if fps is None or fps <= 0:
        raise bad("fps", f"must be a positive number; got {raw['fps']!r}")
    ints = {}
    for name in ("frame_count", "width", "height"):
        ints[name] = as_int(raw[name])
        if ints[name] is None or ints[name] <= 0:
            raise bad(name, f"must be a positive integer; got {raw[name]!r}")
    frame_count = ints["frame_count"]
    spans = {}
    for name in ("used_segment", "temporal_gt"):
        span = raw[name]
        b = as_int(span.get("begin_fid")) if isinstance(span, dict) else None
        e = as_int(span.get("end_fid")) if isinstance(span, dict) else None
        if b is None or e is None:
            raise bad(name, f"must be {{'begin_fid': int, 'end_fid': int}}; got {span!r}")
        spans[name] = (b, e)
    b, e = spans["temporal_gt"]
    # end_fid is excluded; end_fid == frame_count is common (768 real test entries), past it is not.
    if not 0 <= b < e <= frame_count:
        raise bad("temporal_gt", f"[begin_fid, end_fid) = [{b}, {e}) must satisfy 0 <= begin < end <= frame_count={frame_count}")
    objects = raw["subject/objects"]
    categories: dict[int, str] = {}
    for j, obj in enumerate(objects if isinstance(objects, list) else [None]):
        tid = as_int(obj.get("tid")) if isinstance(obj, dict) else None
        if tid is None or not isinstance(obj.get("category"), str):
            raise bad(f"subject/objects[{j}]", f"must be {{'tid': int, 'category': str}}; got {obj!r}")
        categories[tid] = obj["category"]
    for name in ("captions", "questions"):
        if not isinstance(raw[name], list):
            raise bad(name, f"must be a list of sentences; got {type(raw[name]).__name__}")
    return _Entry(
        index=index,
        row=row,
        raw=raw,
        vid=vid,
        fps=fps,
        frame_count=frame_count,
        width=ints["width"],
        height=ints["height"],
        used_segment=spans["used_segment"],
        temporal_gt=spans["temporal_gt"],
        categories=categories,
    )


def _read_vidor(index: dict[str, Path], vid: str, entry: _Entry) -> _VidorVideo:
    vidor_path = index.get(vid)
    if vidor_path is None:
        raise _EntryProblem("vid", f"no VidOR box file {vid}.json below the VidOR folder", VIDOR_HINT)
    try:
        d = read_json(vidor_path, entry.row, what="VidOR box file")
    except AnnotationError as e:
        raise _EntryProblem("vid", f"VidOR box file {vidor_path}: {e.problem}", e.hint) from None
    if not isinstance(d, dict) or not isinstance(d.get("trajectories"), list):
        raise _EntryProblem("vid", f"VidOR box file {vidor_path} has no 'trajectories' list", VIDOR_HINT)
    video_path = d.get("video_path")
    return _VidorVideo(path=vidor_path, video_path=video_path if isinstance(video_path, str) else None, trajectories=d["trajectories"])


def _video_file(video: _VidorVideo, vid: str, finder: VideoFinder | None) -> str | None:
    if finder is None:
        return None
    rel = video.video_path or f"{vid}.mp4"
    found = finder.find(rel)
    if found is None:
        raise _EntryProblem(
            "video",
            f"video {rel!r} (VidOR video_path of {video.path.name}) not found: no {finder.root / rel} "
            f"and no file named {Path(rel).name!r} below {finder.root}",
            "put the video there, fix video_dir, or pass skip_bad=True to skip entries without a video",
        )
    return str(found)


def _sentences(entry: _Entry) -> Iterator[tuple[int, str, str, int, Any]]:
    """Yield ``(order, kind, qtype, k, sentence)``: captions first, then questions, as in the file."""
    order = 0
    for kind, qtype, _ in SENTENCE_KINDS:
        for k, sentence in enumerate(entry.raw[kind]):
            yield order, kind, qtype, k, sentence
            order += 1


def _sentence_sample(
    path: Path,
    entry: _Entry,
    kind: str,
    qtype: str,
    k: int,
    sentence: Any,
    video: _VidorVideo,
    convention: str,
    video_file: str | None,
) -> Sample:
    row = f"entry {entry.index} (vid {entry.vid}, {kind}[{k}])"

    def bad(fld: str, problem: str) -> AnnotationError:
        return AnnotationError(path, row, fld, problem)

    if not isinstance(sentence, dict):
        raise bad(f"{kind}[{k}]", f"must be an object with description, type and target_id; got {sentence!r}")
    description = sentence.get("description")
    if not isinstance(description, str) or not description.strip():
        raise bad(f"{kind}[{k}].description", f"must be a non-empty sentence; got {description!r}")
    tid = as_int(sentence.get("target_id"))
    if tid is None:
        raise bad(f"{kind}[{k}].target_id", f"must be an integer tid; got {sentence.get('target_id')!r}")
    if tid not in entry.categories:
        raise bad(f"{kind}[{k}].target_id", f"tid {tid} is not in the entry's subject/objects (tids {sorted(entry.categories)})")

    begin, end = entry.temporal_gt
    track = video.track(tid)
    last_required = min(end, entry.frame_count) - 1  # last frame of [begin, end) that exists
    for bound in (begin, last_required):
        if bound not in track:
            covered = f"frames {min(track)}..{max(track)}" if track else "no frame"
            raise bad(
                f"{kind}[{k}].target_id",
                f"VidOR trajectory of tid {tid} in {video.path.name} has a box on {covered} but none on frame "
                f"{bound}, so it does not cover the ground-truth moment [{begin}, {end})",
            )

    tube: dict[int, list[float]] = {}
    missing: list[int] = []
    repeated: list[int] = []
    n_clipped = 0
    for frame in vidstg_gt_frames(begin, end, entry.frame_count, convention):
        if frame not in track:
            if frame == end and frame - 1 in tube:  # "inclusive" only: STCAT repeats the last box
                tube[frame] = list(tube[frame - 1])
                repeated.append(frame)
            else:
                missing.append(frame)
            continue
        fitted = video.fitted_box(tid, frame, entry.width, entry.height)
        if isinstance(fitted, str):
            raise bad(f"{video.path.name} trajectories[{frame}] tid {tid}", fitted)
        tube[frame] = list(fitted[0])  # a copy: samples sharing a target must not share box lists
        n_clipped += fitted[1]

    letter = next(letter for name, _, letter in SENTENCE_KINDS if name == kind)
    return Sample(
        id=f"{entry.vid}_{begin}_{end}_{letter}{k}",
        video=video_file,
        query=description,
        fps=entry.fps,
        num_frames=entry.frame_count,
        width=entry.width,
        height=entry.height,
        tube=tube,
        dataset=DATASET_NAME,
        extras={
            "qtype": qtype,
            "sentence_type": sentence.get("type"),
            "target_id": tid,
            "category": entry.categories[tid],
            "vid": entry.vid,
            "entry_index": entry.index,
            "sentence_index": k,
            "used_segment": list(entry.used_segment),
            "temporal_gt": list(entry.temporal_gt),
            "convention": convention,
            "clipped_boxes": n_clipped,
            "missing_box_frames": missing,
            "repeated_frames": repeated,
        },
    )
