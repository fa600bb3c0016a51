"""What the player shows and how one frame of it is drawn: pure functions, no widgets.

Colours follow the paper's figures (Fig. 3, 5, 6): ground truth green, the
``<think_bbox>`` tube blue, the ``<pred_bbox>`` tube red (Fig. 6 reuses blue for another
method: pass ``labels={"think": "TA-STVG"}``).

Frames shown are *original* frame numbers, not the model's 2 fps samples: a tube
(``Sample.tube``, ``Prediction.pred_tube``) is keyed by original frame and vIoU is scored on
original frames, so every displayed frame has its exact boxes, no interpolation.
:func:`display_frame_numbers` keeps ``display_fps`` frames a second (8 by default: every
frame of the synthetic 8 fps clips, every 4th of a 30 fps HC-STVG video) with the same
rule as the model's sampler, and :func:`display_size` scales the frame so that its longer
side is ``side`` pixels (up or down), so that boxes and text stay legible on 224 px clips.

Per-frame IoU is :func:`stvg_lab.geometry.box_iou`; tIoU/vIoU come from
:func:`stvg_lab.metrics.evaluate` (:func:`score_items`), never recomputed here.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from stvg_lab.data.sample import Sample
from stvg_lab.geometry import box_iou, clip_boxes
from stvg_lab.metrics import evaluate, tube_to_arrays
from stvg_lab.video import decode_frames, sample_frame_indices

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

ROLES: tuple[str, ...] = ("gt", "think", "pred")
COLOURS: dict[str, tuple[int, int, int]] = {"gt": (40, 220, 40), "think": (40, 140, 255), "pred": (255, 50, 50)}
DEFAULT_LABELS: dict[str, str] = {"gt": "gt", "think": "think", "pred": "pred"}
TAGS: tuple[str, ...] = ("small", "short", "occluded")  # stvg_lab.data.synth's difficulty tags (paper §B)
DISPLAY_FPS = 8.0
DISPLAY_SIDE = 448

Tube = dict[int, list[float]]


def _as_tube(tube: Mapping[Any, Sequence[float]] | None, sample_id: str, role: str) -> Tube | None:
    """``tube`` with int frame keys and float boxes, validated by ``metrics.tube_to_arrays``."""
    if tube is None:
        return None
    frames, boxes = tube_to_arrays(tube, sample_id, role)
    return {int(f): [float(v) for v in b] for f, b in zip(frames, boxes)}


@dataclass
class PlayerItem:
    """One sample and the tubes to draw over it, all in original frames and pixels.

    ``think``/``pred``: ``{orig_frame: [x1, y1, x2, y2]}`` or None when the source has no
    such tube (a format without ``<think_bbox>``, ground truth only). An empty dict is a
    prediction that failed to parse: it is drawn as nothing and scores 0.
    ``source``: where the predictions come from (``"demo: jittered gt"``, a run folder),
    shown in the readout so demo boxes are never mistaken for a model's.
    ``eval_frames``: frames at which vIoU is scored (e.g.
    :func:`stvg_lab.metrics.tubedetr_sampled_frames`); None scores every frame.
    ``info``: anything else from the source (raw text, parse error, a run's per-sample row).
    """

    sample: Sample
    think: Tube | None = None
    pred: Tube | None = None
    source: str = ""
    eval_frames: Sequence[int] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.think = _as_tube(self.think, self.sample.id, "think")
        self.pred = _as_tube(self.pred, self.sample.id, "pred")

    @property
    def id(self) -> str:
        return self.sample.id

    @property
    def tags(self) -> tuple[str, ...]:
        """The difficulty tags set in ``sample.extras`` (synthetic data only; real data has none)."""
        return tuple(t for t in TAGS if self.sample.extras.get(t) is True)

    def tube(self, role: str) -> Tube | None:
        """The tube of ``role`` (``gt``, ``think`` or ``pred``)."""
        if role == "gt":
            return self.sample.tube
        if role in ("think", "pred"):
            return getattr(self, role)
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")

    def boxes_at(self, frame: int) -> dict[str, list[float] | None]:
        """``{role: box or None}`` at original frame ``frame``, in original pixels."""
        return {r: (t or {}).get(int(frame)) for r in ROLES for t in [self.tube(r)]}


def score_items(items: Sequence[PlayerItem]) -> list[dict[str, dict[str, float] | None]]:
    """``[{"think": {"tIoU", "vIoU"} | None, "pred": {...} | None}]`` per item (TubeDETR, §4.1).

    One :func:`stvg_lab.metrics.evaluate` call per role and per ``eval_frames`` setting;
    a role is None for an item without that tube. Ids must be unique.
    """
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"sample id {dup!r} appears in more than one item; ids must be unique")
    out: list[dict[str, dict[str, float] | None]] = [{"think": None, "pred": None} for _ in items]
    for role in ("think", "pred"):
        with_eval = [i for i, it in enumerate(items) if it.tube(role) is not None and it.eval_frames is not None]
        without = [i for i, it in enumerate(items) if it.tube(role) is not None and it.eval_frames is None]
        for group, use_eval in ((with_eval, True), (without, False)):
            if not group:
                continue
            gts = {items[i].id: items[i].sample.tube for i in group}
            preds = {items[i].id: items[i].tube(role) for i in group}
            ef = {items[i].id: items[i].eval_frames for i in group} if use_eval else None
            per = evaluate(preds, gts, ef, per_sample=True)["per_sample"]
            for i in group:
                rec = per[items[i].id]
                out[i][role] = {"tIoU": float(rec["tIoU"]), "vIoU": float(rec["vIoU"])}
    return out


def frame_ious(item: PlayerItem, frame: int) -> dict[str, float | None]:
    """``{"think": IoU, "pred": IoU}`` with the gt box at original frame ``frame``.

    None where the item has no such tube or neither it nor the gt has a box there; 0.0 where
    only one of them has a box (such a frame is in the temporal union and counts 0 in vIoU).
    """
    boxes = item.boxes_at(frame)
    out: dict[str, float | None] = {}
    for role in ("think", "pred"):
        b, g = boxes[role], boxes["gt"]
        if item.tube(role) is None or (b is None and g is None):
            out[role] = None
        elif b is None or g is None:
            out[role] = 0.0
        else:
            out[role] = float(box_iou(g, b))
    return out


def display_frame_numbers(sample: Sample, display_fps: float = DISPLAY_FPS) -> np.ndarray:
    """Original frame numbers shown for ``sample``: ``(F,)`` int64, ``display_fps`` a second.

    Same rule as the model's sampler (:func:`stvg_lab.video.sample_frame_indices`), capped
    at the video's own rate, so a slower video shows every frame.
    """
    return sample_frame_indices(sample.num_frames, sample.fps, min(float(display_fps), float(sample.fps)))


def display_size(width: int, height: int, side: int = DISPLAY_SIDE) -> tuple[int, int]:
    """``(w, h)`` with the longer side ``side`` and the aspect kept, both even (decoder-friendly)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"frame size must be positive, got {width}x{height}")
    scale = side / max(width, height)
    return max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))


def load_display_frames(sample: Sample, frame_numbers: Sequence[int] | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Decode ``frame_numbers`` of ``sample.video`` at ``size = (w, h)``: ``(F, h, w, 3)`` uint8."""
    if not sample.video:
        raise ValueError(f"sample {sample.id!r} has no video path; load the annotations with a video_dir")
    return decode_frames(sample.video, frame_numbers, size)


def scale_box(box: Sequence[float], from_size: tuple[int, int], to_size: tuple[int, int]) -> list[float]:
    """``box`` from ``from_size`` pixels to ``to_size`` pixels (per axis, as ``stvg_lab.video`` does)."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    x1, y1, x2, y2 = box
    return [x1 * sx, y1 * sy, x2 * sx, y2 * sy]


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _darken(img: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    # img (H, W, 3) uint8, in place: halve the region behind text so it reads on any frame
    h, w = img.shape[:2]
    x0, x1, y0, y1 = max(0, x0), min(w, x1), max(0, y0), min(h, y1)
    if x1 > x0 and y1 > y0:
        img[y0:y1, x0:x1] = img[y0:y1, x0:x1] // 2


def draw_frame(
    frame: np.ndarray,
    gt: Sequence[float] | None = None,
    think: Sequence[float] | None = None,
    pred: Sequence[float] | None = None,
    time_s: float | None = None,
    legend: bool | Sequence[str] = True,
    *,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
) -> np.ndarray:
    """``frame`` ``(H, W, 3)`` uint8 with the boxes, a legend and the time drawn on; a new array.

    Boxes are ``[x1, y1, x2, y2]`` in this frame's pixels (clipped to it), drawn as outlines
    gt (green), then think (blue), then pred (red) on top. ``legend``: True lists the roles
    given a box, a sequence lists those roles whether or not they have a box here (the
    player passes the enabled sets so the legend does not flicker), False none. ``time_s``
    (and ``caption``, e.g. the frame number) go bottom-left. ``labels`` renames roles.
    """
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {arr.shape} {arr.dtype}")
    img = np.ascontiguousarray(arr).copy()
    h, w = img.shape[:2]
    names = {**DEFAULT_LABELS, **(labels or {})}
    boxes = {"gt": gt, "think": think, "pred": pred}
    line = max(2, round(min(h, w) / 150))
    text_px = max(10, round(min(h, w) / 28))
    font = _font(text_px)
    pad = max(2, text_px // 4)
    legend_roles = [r for r in ROLES if boxes[r] is not None] if legend is True else list(legend or [])
    unknown = set(legend_roles) - set(ROLES)
    if unknown:
        raise ValueError(f"legend roles must be among {ROLES}, got {sorted(unknown)}")
    texts = [names[r] for r in legend_roles]
    bottom = " ".join(s for s in ([f"t={time_s:.2f}s"] if time_s is not None else []) + ([caption] if caption else []))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    widths = [probe.textlength(t, font=font) for t in texts]
    sw = text_px  # colour swatch side
    if texts:
        _darken(img, 0, 0, int(sum(widths) + len(texts) * (sw + 3 * pad) + pad), text_px + 2 * pad)
    if bottom:
        _darken(img, 0, h - text_px - 2 * pad, int(probe.textlength(bottom, font=font) + 2 * pad), h)
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    for role in ROLES:
        if boxes[role] is None:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in clip_boxes(np.asarray(boxes[role], dtype=np.float64), w - 1, h - 1))
        if x2 >= x1 and y2 >= y1:
            draw.rectangle([x1, y1, x2, y2], outline=COLOURS[role], width=line)
    x = pad
    for role, text, tw in zip(legend_roles, texts, widths):
        draw.rectangle([x, pad, x + sw - 1, pad + sw - 1], fill=COLOURS[role])
        draw.text((x + sw + pad, pad), text, fill=(255, 255, 255), font=font)
        x += int(sw + tw + 3 * pad)
    if bottom:
        draw.text((pad, h - text_px - pad), bottom, fill=(255, 255, 255), font=font)
    return np.asarray(pil)


def encode_png(image: np.ndarray, compress_level: int = 1) -> bytes:
    """PNG bytes of ``image`` ``(H, W, 3)`` uint8 (level 1: fast, the player re-encodes every frame)."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def draw_item_frame(
    item: PlayerItem,
    frame: np.ndarray,
    frame_number: int,
    show: Iterable[str] = ROLES,
    *,
    legend: bool = True,
    labels: Mapping[str, str] | None = None,
    stamp: bool = True,
) -> np.ndarray:
    """:func:`draw_frame` of ``item`` at original frame ``frame_number`` on ``frame`` (any size).

    Boxes are scaled from the sample's original pixels to ``frame``'s; ``show`` picks the
    roles; the legend lists the shown roles the item has; ``stamp`` writes the time and the
    frame number bottom-left.
    """
    shown = [r for r in ROLES if r in set(show) and item.tube(r) is not None]
    orig = (item.sample.width, item.sample.height)
    size = (frame.shape[1], frame.shape[0])
    boxes = item.boxes_at(frame_number)
    scaled = {r: scale_box(boxes[r], orig, size) if (r in shown and boxes[r] is not None) else None for r in ROLES}
    return draw_frame(
        frame, scaled["gt"], scaled["think"], scaled["pred"],
        time_s=frame_number / float(item.sample.fps) if stamp else None,
        legend=shown if legend else False, labels=labels, caption=f"#{int(frame_number)}" if stamp else None,
    )


def strip_frame_numbers(item: PlayerItem, n: int = 8, display_fps: float = DISPLAY_FPS) -> np.ndarray:
    """``n`` displayed frame numbers spread evenly over the hull of the gt, think and pred spans.

    The hull is widened by one displayed frame each side where the video allows, so a strip
    shows the target's first and last frames and, just outside, that it is absent. Fewer
    than ``n`` come back when the hull holds fewer displayed frames.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    shown = display_frame_numbers(item.sample, display_fps)
    ends = [f for r in ROLES for t in [item.tube(r)] if t for f in (min(t), max(t))]
    lo = int(np.searchsorted(shown, min(ends), side="right")) - 1
    hi = int(np.searchsorted(shown, max(ends), side="left"))
    lo, hi = max(0, lo - 1), min(len(shown) - 1, hi + 1)
    idx = np.unique(np.round(np.linspace(lo, hi, num=min(n, hi - lo + 1))).astype(np.int64))
    return shown[idx]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def frame_strip(
    item: PlayerItem,
    n: int = 8,
    *,
    display_fps: float = DISPLAY_FPS,
    side: int = 224,
    labels: Mapping[str, str] | None = None,
    frames: np.ndarray | None = None,
) -> "Figure":
    """A one-row matplotlib Figure of ``n`` frames of ``item`` with its boxes (paper Fig. 3, 5, 6).

    Frames from :func:`strip_frame_numbers`, each titled with its time and per-frame IoU; the
    figure title holds the query, the source and the sample's tIoU/vIoU. ``frames``
    ``(n', h, w, 3)`` skips decoding (they must be those frame numbers). The Figure is built
    without pyplot, so nothing is left open; save it with ``fig.savefig`` or :func:`figure_png`.
    """
    from matplotlib.figure import Figure

    numbers = strip_frame_numbers(item, n, display_fps)
    if frames is None:
        frames = load_display_frames(item.sample, numbers, display_size(item.sample.width, item.sample.height, side))
    if len(frames) != len(numbers):
        raise ValueError(f"frames holds {len(frames)} images for {len(numbers)} frame numbers {numbers.tolist()}")
    score = score_items([item])[0]
    h, w = frames.shape[1:3]
    cols = len(numbers)
    fig = Figure(figsize=(2.0 * cols * w / max(h, w) + 0.2, 2.0 * h / max(h, w) + 0.9), dpi=100)
    axes = fig.subplots(1, cols, squeeze=False)[0]
    names = {**DEFAULT_LABELS, **(labels or {})}
    roles = [r for r in ("think", "pred") if item.tube(r) is not None]
    for ax, f, img in zip(axes, numbers, frames):
        ax.imshow(draw_item_frame(item, img, int(f), legend=False, labels=labels, stamp=False))
        ious = frame_ious(item, int(f))
        iou_line = " ".join(f"{names[r]} {_fmt(ious[r])}" for r in roles)
        ax.set_title(f"#{int(f)} t={f / item.sample.fps:.2f}s" + (f"\nIoU {iou_line}" if roles else ""), fontsize=7)
        ax.set_axis_off()
    parts = [f"{names[r]} tIoU {s['tIoU']:.2f} vIoU {s['vIoU']:.2f}" for r, s in score.items() if s is not None]
    key = ", ".join(f"{names[r]} {c}" for r, c in zip(ROLES, ("green", "blue", "red")) if item.tube(r) is not None)
    title = f"{item.id}: \u201c{item.sample.query}\u201d\n{key}" + (f"; {'; '.join(parts)}" if parts else "")
    if item.source:
        title += f"  [{item.source}]"
    fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.75 / fig.get_figheight(), wspace=0.04)
    return fig


def figure_png(fig: "Figure", dpi: int = 100) -> bytes:
    """PNG bytes of a matplotlib Figure (Agg; no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def blank_frame(size: tuple[int, int], message: str) -> np.ndarray:
    """A dark ``(h, w, 3)`` frame with ``message`` on it (the player's image when nothing matches)."""
    img = Image.new("RGB", (int(size[0]), int(size[1])), (24, 24, 32))
    font = _font(max(10, round(min(size) / 24)))
    ImageDraw.Draw(img).text((8, size[1] // 2 - 8), message, fill=(220, 220, 220), font=font)
    return np.asarray(img)
