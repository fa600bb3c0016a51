"""Drawing one synthetic video from a :class:`~stvg_lab.data.synth_config.SynthConfig`: objects, events, query, frames.

Geometry is in pixels and frames; every draw comes from the caller's random stream, so a scene
is a pure function of ``(config, split, rng)``. :func:`make_scene` returns the objects and the
target's tube; :func:`render_frames` turns objects into ``(N, H, W, 3)`` uint8 frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from stvg_lab.data.synth_config import _DIRECTION, ATTRIBUTES, PALETTE, SHAPES, SynthConfig, Vocabulary

_PLACEMENT_TRIES = 200  # geometry redraws per object under SynthConfig.max_centre_share

@dataclass
class _Object:
    """One rendered object. Positions are top-left corners per frame, ``(N,)`` floats."""

    attributes: dict[str, str]
    px: int
    xs: np.ndarray
    ys: np.ndarray
    visible: np.ndarray  # (N,) bool

    def boxes(self) -> np.ndarray:
        """``(N, 4)`` x1y1x2y2 integer-pixel boxes of the rendered shape (unclipped)."""
        x, y = np.round(self.xs), np.round(self.ys)
        return np.stack([x, y, x + self.px, y + self.px], axis=-1)


@lru_cache(maxsize=None)
def shape_mask(shape: str, s: int) -> np.ndarray:
    """``(s, s)`` bool mask touching all four sides of its box, so the box is the tight box."""
    v, u = np.mgrid[0:s, 0:s] + 0.5  # pixel centres
    c = s / 2.0
    if shape == "circle":
        return (u - c) ** 2 + (v - c) ** 2 <= c**2 + 0.5
    if shape == "square":
        return np.ones((s, s), dtype=bool)
    if shape == "triangle":  # apex at the top centre, base along the bottom
        return np.abs(u - c) <= (v + 0.5) / 2.0
    if shape == "diamond":
        return np.abs(u - c) + np.abs(v - c) <= c + 0.5
    if shape == "cross":
        return (np.abs(u - c) <= s / 6.0) | (np.abs(v - c) <= s / 6.0)
    raise ValueError(f"unknown shape {shape!r}; choose one of {SHAPES}")


def _clipped(boxes: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.stack(
        [np.clip(boxes[:, 0], 0, w), np.clip(boxes[:, 1], 0, h), np.clip(boxes[:, 2], 0, w), np.clip(boxes[:, 3], 0, h)],
        axis=-1,
    )


def _area(b: np.ndarray) -> np.ndarray:
    return np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)


def _gap_ok(a: _Object, b: _Object, margin: float) -> bool:
    """True when the two objects never come within ``margin`` px while both are visible."""
    both = a.visible & b.visible
    if not both.any():
        return True
    ba, bb = a.boxes()[both], b.boxes()[both]
    dx = np.maximum(ba[:, 0], bb[:, 0]) - np.minimum(ba[:, 2], bb[:, 2])
    dy = np.maximum(ba[:, 1], bb[:, 1]) - np.minimum(ba[:, 3], bb[:, 3])
    return bool((np.maximum(dx, dy) >= margin).all())


class _Scene:
    """Draws one video's objects from a random stream (all geometry in pixels and frames)."""

    def __init__(self, cfg: SynthConfig, rng: np.random.Generator) -> None:
        self.cfg, self.rng = cfg, rng
        self.n = cfg.num_frames
        self.W, self.H = cfg.width, cfg.height

    def size_px(self, size: str) -> int:
        lo, hi = self.cfg.small_px if size == "small" else self.cfg.large_px
        return int(self.rng.integers(lo, hi + 1))

    def speed(self) -> float:
        """Pixels per frame."""
        return float(self.rng.uniform(*self.cfg.speed_px_per_s)) / self.cfg.fps

    def linear(self, px: int, motion: str, visible: tuple[int, int], moving: tuple[int, int], speed: float) -> _Object:
        """An object visible on frames ``visible`` (inclusive), moving only during ``moving``.

        The start point is drawn so the whole path stays ``margin_px`` inside the frame.
        """
        m = self.cfg.margin_px
        dx, dy = _DIRECTION[motion]
        t = np.arange(self.n, dtype=np.float64)
        travel = np.clip(t, moving[0], moving[1]) - moving[0]  # (N,) frames travelled so far
        path = speed * (moving[1] - moving[0])
        starts = []
        for d, extent in ((dx, self.W), (dy, self.H)):
            lo, hi = m + max(0.0, -d) * path, extent - px - m - max(0.0, d) * path
            starts.append(float(self.rng.uniform(lo, max(lo, hi))))
        vis = np.zeros(self.n, dtype=bool)
        vis[visible[0] : visible[1] + 1] = True
        return _Object({}, px, starts[0] + dx * speed * travel, starts[1] + dy * speed * travel, vis)

    def fits(self, px: int, speed: float, frames: int) -> bool:
        return speed * frames <= min(self.W, self.H) - px - 2 * self.cfg.margin_px

    def placed(self, obj: _Object, frames: np.ndarray | slice) -> bool:
        """Whether at most ``max_centre_share`` of ``frames`` (an (N,) bool mask or a slice) put ``obj``'s centre in the centre quarter."""
        if self.cfg.max_centre_share >= 1.0:
            return True  # no test, so the default draws exactly what generator 2 drew
        b = obj.boxes()[frames]  # (T, 4)
        cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
        inside = (np.abs(cx - self.W / 2) < self.W / 4) & (np.abs(cy - self.H / 2) < self.H / 4)
        return float(inside.mean()) <= self.cfg.max_centre_share if inside.size else True

    def event_frames(self, short: bool) -> int:
        lo, hi = self.cfg.short_event_seconds if short else self.cfg.event_seconds
        return max(1, int(round(self.rng.uniform(lo, hi) * self.cfg.fps)))


def _choice(rng: np.random.Generator, values: Sequence[str]) -> str:
    return str(values[int(rng.integers(len(values)))])


def _weighted(rng: np.random.Generator, weights: Mapping[str, float]) -> str:
    keys = [k for k, w in weights.items() if w > 0]
    p = np.array([weights[k] for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _motion_phrase(event: str, motion: str) -> str:
    if motion == "still":
        return "stays still"
    if event == "cross":
        frm, to = {"left": ("right", "left"), "right": ("left", "right"), "up": ("bottom", "top"), "down": ("top", "bottom")}[motion]
        return f"crosses the frame from {frm} to {to}"
    return f"moves {motion}"


def query_text(cfg: SynthConfig, template: int, attributes: Mapping[str, str], event: str) -> str:
    """The sentence of ``cfg.templates[template]`` for an object with ``attributes`` in a clip of ``event`` kind.

    The generator's own query for the target; with a distractor's attributes, the query that would
    name that distractor instead (``stvg_lab.analysis.word_reliance``).
    """
    a = attributes
    return cfg.templates[template].format(size=a["size"], colour=a["colour"], shape=a["shape"], motion=_motion_phrase(event, a["motion"]))


def _make_target(scene: _Scene, vocab: Vocabulary) -> tuple[_Object, str, tuple[int, int], bool]:
    """The target, its event kind, its tube's frame interval and whether it was drawn short."""
    cfg, rng, n = scene.cfg, scene.rng, scene.n
    attrs = {a: _choice(rng, vocab.values(a)) for a in ATTRIBUTES}
    if "small" in vocab.sizes and "large" in vocab.sizes:
        attrs["size"] = "small" if rng.random() < cfg.p_small else "large"
    short = bool(rng.random() < cfg.p_short)
    weights = dict(cfg.event_weights)
    if attrs["motion"] == "still":
        weights = {"appear": 1.0}  # still objects can neither start moving nor cross
    elif short:
        weights.pop("cross", None)  # a sub-second crossing is a flash, not an event
        weights = weights or {"appear": 1.0}
    event = _weighted(rng, weights)
    px = scene.size_px(attrs["size"])
    length = min(scene.event_frames(short), n - 1)
    start = int(rng.integers(0, n - length + 1))
    for _attempt in range(_PLACEMENT_TRIES):  # only the geometry is drawn again (max_centre_share)
        t0, t1 = start, start + length - 1
        if event == "cross":
            obj = _crossing(scene, px, attrs["motion"], t0, t1)
            on = _area(_clipped(obj.boxes(), scene.W, scene.H)) >= 0.5 * px * px
            frames = np.flatnonzero(on & obj.visible)
            t0, t1 = int(frames[0]), int(frames[-1])
        else:
            speed = scene.speed()
            if not scene.fits(px, speed, max(t1 - t0, 1)):
                speed = (min(scene.W, scene.H) - px - 2 * cfg.margin_px) / max(t1 - t0, 1)
            visible = (t0, t1) if event == "appear" else (0, n - 1)
            obj = scene.linear(px, attrs["motion"], visible, (t0, t1), speed)
        if scene.placed(obj, slice(t0, t1 + 1)):
            break
    else:
        raise RuntimeError(
            f"SynthConfig.max_centre_share={cfg.max_centre_share}: no placement of a {px}-px {attrs['motion']} "
            f"{event} target over {length} frames in {_PLACEMENT_TRIES} draws; raise it or shorten event_seconds"
        )
    obj.attributes = attrs
    return obj, event, (t0, t1), short


def _crossing(scene: _Scene, px: int, motion: str, t0: int, t1: int) -> _Object:
    """Half inside at the entering edge on ``t0``, half outside at the leaving edge on ``t1``."""
    dx, dy = _DIRECTION[motion]
    extent = scene.W if dx else scene.H
    speed = extent / max(t1 - t0, 1)  # px per frame: the centre travels the frame's extent
    t = np.arange(scene.n, dtype=np.float64)
    along = (-px / 2.0 + speed * (t - t0)) if (dx > 0 or dy > 0) else (extent - px / 2.0 - speed * (t - t0))
    m = scene.cfg.margin_px
    other_extent = scene.H if dx else scene.W
    across = float(scene.rng.uniform(m, other_extent - px - m))
    xs, ys = (along, np.full(scene.n, across)) if dx else (np.full(scene.n, across), along)
    obj = _Object({}, px, xs, ys, np.ones(scene.n, dtype=bool))
    obj.visible = _area(_clipped(obj.boxes(), scene.W, scene.H)) > 0
    return obj


def _distractor_attributes(
    rng: np.random.Generator, target: Mapping[str, str], vocab: Vocabulary, cfg: SynthConfig
) -> dict[str, str] | None:
    """Attributes sharing some (never all) named attributes with the target; None if impossible.

    The number shared is drawn from ``cfg.shared_weights``; at least one attribute that every
    template names always differs, so the target's query never fits a distractor.
    """
    n_shared = int(rng.choice(4, p=np.asarray(cfg.shared_weights) / np.sum(cfg.shared_weights)))
    order = [ATTRIBUTES[i] for i in rng.permutation(len(ATTRIBUTES))]
    named = cfg.named_attributes
    changeable = [a for a in order if a in named and any(v != target[a] for v in vocab.values(a))]
    if not changeable:
        return None
    differ = set(changeable[: max(1, len(ATTRIBUTES) - n_shared)])
    attrs = {}
    for a in ATTRIBUTES:
        values = vocab.values(a)
        if a in differ:
            attrs[a] = _choice(rng, [v for v in values if v != target[a]])
        elif target[a] in values:
            attrs[a] = target[a]
        else:  # sharing wanted, but the distractor vocabulary lacks the target's word
            attrs[a] = _choice(rng, values)
    return attrs


def _make_distractor(scene: _Scene, attrs: dict[str, str]) -> _Object | None:
    cfg, rng, n = scene.cfg, scene.rng, scene.n
    px = scene.size_px(attrs["size"])
    if rng.random() < cfg.p_distractor_full:
        a, b = 0, n - 1
    else:
        length = int(rng.integers(min(n, int(cfg.min_distractor_seconds * cfg.fps)), n + 1))
        a = int(rng.integers(0, n - length + 1))
        b = a + length - 1
    speed = scene.speed() if attrs["motion"] != "still" else 0.0
    if speed and not scene.fits(px, speed, b - a):
        # too long for its speed: keep the speed (so "moves" stays visible), shorten the interval
        b = a + int((min(scene.W, scene.H) - px - 2 * cfg.margin_px) // speed)
    for _attempt in range(_PLACEMENT_TRIES):
        obj = scene.linear(px, attrs["motion"], (a, b), (a, b), speed)
        if scene.placed(obj, obj.visible):
            break
    else:
        return None  # the caller's rejection loop draws another distractor
    obj.attributes = dict(attrs)
    return obj


def _make_occluder(scene: _Scene, target: _Object, tube: tuple[int, int]) -> _Object | None:
    """Same colour and shape as the target, drawn over it at the event's middle frame.

    A moving target passes behind a still occluder; a still target has a moving occluder
    pass over it. Either way their motions differ, so the query still names one object.
    """
    rng, n = scene.rng, scene.n
    tm = (tube[0] + tube[1]) // 2
    t_attrs = target.attributes
    motion = "still" if t_attrs["motion"] != "still" else _choice(rng, ("left", "right", "up", "down"))
    attrs = {**t_attrs, "motion": motion}
    px = target.px
    jitter = rng.uniform(-0.3, 0.3, size=2) * px  # partial, not total, occlusion
    cx, cy = target.xs[tm] + jitter[0], target.ys[tm] + jitter[1]
    t = np.arange(n, dtype=np.float64)
    if motion == "still":
        xs, ys = np.full(n, cx), np.full(n, cy)
    else:
        dx, dy = _DIRECTION[motion]
        v = scene.speed()
        xs, ys = cx + dx * v * (t - tm), cy + dy * v * (t - tm)
    obj = _Object(attrs, px, xs, ys, np.ones(n, dtype=bool))
    inside = _area(_clipped(obj.boxes(), scene.W, scene.H)) >= px * px  # fully inside only
    if not inside[tm]:
        return None
    # visible on the contiguous run of fully-inside frames around tm
    lo, hi = tm, tm
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    while hi < n - 1 and inside[hi + 1]:
        hi += 1
    obj.visible = np.zeros(n, dtype=bool)
    obj.visible[lo : hi + 1] = True
    return obj


def _occlusion(target: _Object, over: Sequence[_Object], tube: tuple[int, int], w: int, h: int) -> float:
    """Largest fraction of the target's visible box covered by objects drawn over it, in the tube."""
    tb = _clipped(target.boxes(), w, h)
    worst = 0.0
    for o in over:
        ob = _clipped(o.boxes(), w, h)
        for t in range(tube[0], tube[1] + 1):
            if not (o.visible[t] and target.visible[t]):
                continue
            ix = max(0.0, min(tb[t, 2], ob[t, 2]) - max(tb[t, 0], ob[t, 0]))
            iy = max(0.0, min(tb[t, 3], ob[t, 3]) - max(tb[t, 1], ob[t, 1]))
            worst = max(worst, ix * iy / max(float(_area(tb[t])), 1.0))
    return worst


def make_scene(cfg: SynthConfig, split: str, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one video: objects in drawing order, the target's tube, query and tags.

    Returns ``{"objects": [_Object, ...] (target included), "target": _Object, "tube": (t0, t1),
    "query": str, "meta": {...}}``; ``meta`` is what ``{split}_meta.json`` stores.
    """
    target_vocab, distractor_vocab = cfg.vocabularies(split)
    scene = _Scene(cfg, rng)
    target, event, tube, _ = _make_target(scene, target_vocab)
    occluders: list[_Object] = []
    if rng.random() < cfg.p_occluded:
        occ = _make_occluder(scene, target, tube)
        if occ is not None and _occlusion(target, [occ], tube, scene.W, scene.H) >= 0.25:
            occluders.append(occ)
    distractors: list[_Object] = []
    want = int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1)) - len(occluders)
    for _ in range(max(0, want)):
        for _attempt in range(20):  # rejection sampling: keep the target (and others) unobstructed
            attrs = _distractor_attributes(rng, target.attributes, distractor_vocab, cfg)
            if attrs is None:
                break
            d = _make_distractor(scene, attrs)
            if d is not None and all(_gap_ok(d, o, cfg.margin_px) for o in [target, *occluders, *distractors]):
                distractors.append(d)
                break
    objects = [*distractors, target, *occluders]  # drawing order: occluders on top
    occlusion = _occlusion(target, occluders, tube, scene.W, scene.H)
    a = target.attributes
    template = int(rng.integers(len(cfg.templates)))
    query = query_text(cfg, template, a, event)
    seconds = (tube[1] - tube[0] + 1) / cfg.fps
    meta = {
        "small": a["size"] == "small",
        "short": bool(seconds <= cfg.short_max_seconds),
        "occluded": bool(occlusion >= 0.25),
        "occlusion": round(float(occlusion), 3),
        "attributes": dict(a),
        "event": event,
        "n_distractors": len(distractors) + len(occluders),
        "distractors": [dict(o.attributes) for o in distractors + occluders],
        "template": template,
        "tube_seconds": round(seconds, 3),
    }
    return {"objects": objects, "target": target, "tube": tube, "query": query, "meta": meta}


def render_frames(cfg: SynthConfig, objects: Sequence[_Object]) -> np.ndarray:
    """``(N, H, W, 3)`` uint8 RGB frames with ``objects`` drawn in order (later on top)."""
    frames = np.empty((cfg.num_frames, cfg.height, cfg.width, 3), dtype=np.uint8)
    frames[:] = np.asarray(cfg.background, dtype=np.uint8)
    for o in objects:
        mask = shape_mask(o.attributes["shape"], o.px)
        colour = np.asarray(PALETTE[o.attributes["colour"]], dtype=np.uint8)
        for t in np.flatnonzero(o.visible):
            x, y = int(round(o.xs[t])), int(round(o.ys[t]))
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + o.px, cfg.width), min(y + o.px, cfg.height)
            if x0 >= x1 or y0 >= y1:
                continue
            m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
            frames[t, y0:y1, x0:x1][m] = colour
    if any(cfg.lighting):
        frames = apply_lighting(frames, cfg.lighting)
    return frames


def apply_lighting(frames: np.ndarray, amplitude: Sequence[float]) -> np.ndarray:
    """``frames`` (N, H, W, 3) uint8 plus the positional lighting of ``SynthConfig.lighting``."""
    n, h, w, _ = frames.shape
    ax, ay, at = (float(a) for a in amplitude)
    ramp = lambda k: (np.arange(k, dtype=np.float32) + 0.5) / k - 0.5  # (k,) in (-0.5, 0.5)
    light = (
        ax * ramp(w)[None, None, :, None] * np.array([1, 0, 0], np.float32)
        + ay * ramp(h)[None, :, None, None] * np.array([0, 1, 0], np.float32)
        + at * ramp(n)[:, None, None, None] * np.array([0, 0, 1], np.float32)
    )  # (N, H, W, 3) by broadcasting
    return np.clip(frames.astype(np.float32) + light, 0, 255).round().astype(np.uint8)
