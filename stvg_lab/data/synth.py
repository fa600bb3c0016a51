"""The synthetic STVG benchmark: small real mp4 videos of coloured shapes, one described target.

The project's embedded default dataset: it needs no download, generates in seconds on a
laptop CPU and is learnable by a tiny vision-language model, while keeping the structure of
STVG (a sentence names one object among similar ones; the answer is a time span plus a box
per frame) and the paper's three failure modes (§B) as tagged knobs:

* ``small``: the target is 16-20 px instead of 30-40 px ("missing small objects");
* ``short``: the event lasts at most ``short_max_seconds`` (1 s = two frames at 2 fps,
  "extremely short events");
* ``occluded``: an object of the target's colour and shape passes in front of it during the
  event ("occlusion-induced confusion"); the ground-truth box stays the full (amodal) box.

Each video holds a target and 0-2 distractors (0-3 in the ``hard`` preset) on a dark background
under a positional lighting ramp (``SynthConfig.lighting``; flat in ``hard``). Every object has
four attributes a sentence names: size (small/large), colour, shape and motion (moves
left/right/up/down, stays still). The query always names all four, e.g. "the small red
circle that moves left"; distractors share some of them with the target but never all, so
the query is unique within the video only when read whole. The target's event is one of:

* ``appear``: the target is visible only during the event (pops in and out) and moves, or
  stays still, throughout it;
* ``move``: the target is visible the whole clip, still except during the event, when it
  moves ("... that moves left" then picks the moving phase);
* ``cross``: the target enters the frame at one edge and leaves by the opposite one
  ("... that crosses the frame from right to left"); the tube is the frames where at least
  half of it is inside, its boxes clipped to the frame.

Layout written by :func:`generate_synthetic` (HC-STVG v2's raw format, so the real loader
path runs on it)::

    <root>/dataset.json                    manifest: config, seed, clip_seconds, fps, counts, version
    <root>/annotations/{split}_v2.json     HC-STVG v2 records keyed by "<name>.mp4"
    <root>/annotations/{split}_meta.json   difficulty tags and attributes, same keys
    <root>/videos/<name>.mp4               h264 yuv420p (mpeg4 when libx264 is missing)

Every video is drawn from its own random stream ``default_rng([seed, split, index])``, so
the same seed and config give identical annotations whatever the worker count.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from stvg_lab.data.sample import Sample

logger = logging.getLogger(__name__)

GENERATOR_VERSION = "2"  # 2: the learnable defaults and positional lighting (1 is PRESETS["hard"])
SPLITS = ("train", "val", "test")
DATASET_NAME = "synthetic"

# Saturated and far apart in RGB (each pair differs by >= ~100 in some channel) so that h264's
# chroma subsampling at 16 px cannot blend two names together.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 200, 60),
    "blue": (60, 100, 255),
    "yellow": (240, 220, 40),
    "magenta": (220, 60, 220),
    "cyan": (40, 220, 230),
    "orange": (255, 140, 20),
    "white": (235, 235, 235),
}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
MOTIONS = ("left", "right", "up", "down", "still")
SIZES = ("small", "large")
ATTRIBUTES = ("size", "colour", "shape", "motion")
EVENT_KINDS = ("appear", "move", "cross")
_DIRECTION = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0), "still": (0.0, 0.0)}


@dataclass(frozen=True)
class Vocabulary:
    """The words (attribute values) objects may take; restrict it for open-vocabulary splits."""

    colours: tuple[str, ...] = tuple(PALETTE)
    shapes: tuple[str, ...] = SHAPES
    motions: tuple[str, ...] = MOTIONS
    sizes: tuple[str, ...] = SIZES

    def __post_init__(self) -> None:
        for name, allowed in (("colours", PALETTE), ("shapes", SHAPES), ("motions", MOTIONS), ("sizes", SIZES)):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values:
                raise ValueError(f"Vocabulary.{name} is empty; give at least one of {list(allowed)}")
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ValueError(f"Vocabulary.{name}: unknown value(s) {bad}; allowed: {list(allowed)}")

    def values(self, attribute: str) -> tuple[str, ...]:
        """Allowed values of ``attribute`` (``size``, ``colour``, ``shape`` or ``motion``)."""
        return {"size": self.sizes, "colour": self.colours, "shape": self.shapes, "motion": self.motions}[attribute]

    def without(self, held_out: Mapping[str, Sequence[str]]) -> "Vocabulary":
        """This vocabulary minus the held-out words (keys: size, colour, shape, motion)."""
        return self._map(held_out, lambda values, words: tuple(v for v in values if v not in words))

    def only(self, held_out: Mapping[str, Sequence[str]]) -> "Vocabulary":
        """This vocabulary with each held-out attribute restricted to its held-out words."""
        return self._map(held_out, lambda values, words: tuple(v for v in values if v in words))

    def _map(self, held_out: Mapping[str, Sequence[str]], fn) -> "Vocabulary":
        fields = {"size": "sizes", "colour": "colours", "shape": "shapes", "motion": "motions"}
        unknown = set(held_out) - set(fields)
        if unknown:
            raise ValueError(f"held-out attributes must be among {list(fields)}, got {sorted(unknown)}")
        return replace(self, **{fields[a]: fn(self.values(a), set(w)) for a, w in held_out.items()})


@dataclass
class SynthConfig:
    """Every knob of the generator; saved in ``dataset.json``.

    The defaults are the benchmark a from-scratch CPU stand-in can learn to ground in minutes
    (measured in bench/LEARNING.md): 112x112 frames (a 4x4 grid of Qwen2.5-VL's 28-px tokens, so
    answer coordinates equal video pixels), 4 s at 8 fps (32 frames; 2 fps sampling keeps 8),
    objects 30-40 px ("large", 7-13 % of the frame) or 16-20 px ("small"), 0-2 distractors,
    ``appear`` and ``cross`` events, and the positional ``lighting`` below.
    :data:`PRESETS` ``["hard"]`` is the first version's harder benchmark (224 px, 7 s, ``move``
    events, occluders, up to 3 distractors, flat lighting).
    ``target_vocabulary`` / ``distractor_vocabulary`` override ``vocabulary`` per split
    (see :func:`open_vocabulary_config`).
    """

    width: int = 112
    height: int = 112
    fps: float = 8.0
    clip_seconds: float = 4.0
    background: tuple[int, int, int] = (48, 48, 56)  # mid-dark, so the lighting can go down as well as up
    large_px: tuple[int, int] = (30, 40)
    small_px: tuple[int, int] = (16, 20)
    speed_px_per_s: tuple[float, float] = (16.0, 32.0)
    n_distractors: tuple[int, int] = (0, 2)
    event_seconds: tuple[float, float] = (1.5, 3.0)
    short_event_seconds: tuple[float, float] = (0.5, 1.0)
    short_max_seconds: float = 1.0
    min_distractor_seconds: float = 1.5
    p_small: float = 0.2
    p_short: float = 0.1
    p_occluded: float = 0.0
    p_distractor_full: float = 0.5
    event_weights: dict[str, float] = field(default_factory=lambda: {"appear": 0.7, "cross": 0.3})
    # how many of the four named attributes a distractor shares with the target (0..3)
    shared_weights: tuple[float, float, float, float] = (0.15, 0.3, 0.35, 0.2)
    templates: tuple[str, ...] = ("the {size} {colour} {shape} that {motion}", "find the {size} {colour} {shape} that {motion}")
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    target_vocabulary: dict[str, Vocabulary] = field(default_factory=dict)
    distractor_vocabulary: dict[str, Vocabulary] = field(default_factory=dict)
    margin_px: int = 4
    # Additive "lighting" (0-255 units, peak to peak) that rises with x on R, with y on G and with
    # time on B. Why: Qwen2.5-VL has only rotary positions (2-D RoPE in the vision tower, mRoPE
    # in the LLM), which say how far apart two tokens are, never where one is. A real checkpoint
    # learned absolute position from web-scale data; a stand-in trained from scratch on CPU does
    # not, so without a positional cue in the pixels it cannot write absolute coordinates or
    # frame indices (bench/LEARNING.md measures both settings). (0, 0, 0) draws flat frames.
    lighting: tuple[float, float, float] = (64.0, 64.0, 64.0)
    codec: str = "libx264"
    crf: int = 18

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"SynthConfig: width and height must be even for yuv420p, got {self.width}x{self.height}")
        if max(self.large_px) + 2 * self.margin_px > min(self.width, self.height):
            raise ValueError("SynthConfig: large_px does not fit in the frame")
        if not set(self.event_weights) <= set(EVENT_KINDS) or sum(self.event_weights.values()) <= 0:
            raise ValueError(f"SynthConfig.event_weights: keys among {EVENT_KINDS} with a positive sum")
        if self.event_seconds[1] >= self.clip_seconds:
            raise ValueError("SynthConfig: event_seconds must be shorter than clip_seconds")
        if not self.templates or any("{motion}" not in t for t in self.templates):
            raise ValueError("SynthConfig.templates: each template needs {size} {colour} {shape} {motion}")
        bad = set(self.target_vocabulary) | set(self.distractor_vocabulary)
        if not bad <= set(SPLITS):
            raise ValueError(f"SynthConfig: per-split vocabularies must be keyed by {SPLITS}, got {sorted(bad)}")

    @property
    def num_frames(self) -> int:
        return int(round(self.fps * self.clip_seconds))

    def vocabularies(self, split: str) -> tuple[Vocabulary, Vocabulary]:
        """``(target, distractor)`` vocabularies of ``split``."""
        return self.target_vocabulary.get(split, self.vocabulary), self.distractor_vocabulary.get(split, self.vocabulary)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SynthConfig":
        """Inverse of :meth:`to_dict` (lists back to tuples, vocabularies rebuilt)."""
        d = dict(d)
        for key in ("target_vocabulary", "distractor_vocabulary"):
            d[key] = {s: Vocabulary(**v) for s, v in d.get(key, {}).items()}
        if "vocabulary" in d:
            d["vocabulary"] = Vocabulary(**d["vocabulary"])
        for key, value in list(d.items()):
            if isinstance(value, list):
                d[key] = tuple(value)
        return cls(**d)


# Named configurations (``stvg-lab data synth --preset NAME``).
PRESETS: dict[str, SynthConfig] = {
    "default": SynthConfig(),
    "hard": SynthConfig(
        width=224, height=224, clip_seconds=7.0, background=(16, 16, 24), n_distractors=(0, 3),
        event_seconds=(2.0, 4.5), p_short=0.15, p_occluded=0.15,
        event_weights={"appear": 0.5, "move": 0.3, "cross": 0.2}, lighting=(0.0, 0.0, 0.0),
    ),
}


def open_vocabulary_config(held_out: Mapping[str, Sequence[str]], base: SynthConfig | None = None) -> SynthConfig:
    """A config whose train/val splits never show the held-out words and whose test names only them.

    ``held_out`` maps attributes to words, e.g. ``{"colour": ["orange", "cyan"]}``. Train and
    val draw targets and distractors from the vocabulary without those words; test targets
    take each held-out attribute from the held-out words only (distractors use the full
    vocabulary). The analogue of the paper's Table 4 (train on VidSTG, test on HC-STVG).
    """
    base = base or SynthConfig()
    seen, unseen = base.vocabulary.without(held_out), base.vocabulary.only(held_out)
    return replace(
        base,
        target_vocabulary={"train": seen, "val": seen, "test": unseen},
        distractor_vocabulary={"train": seen, "val": seen, "test": base.vocabulary},
    )


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
def _shape_mask(shape: str, s: int) -> np.ndarray:
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
    t0 = int(rng.integers(0, n - length + 1))
    t1 = t0 + length - 1
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

    The number shared is drawn from ``cfg.shared_weights``; at least one attribute always
    differs, so the target's query never fits a distractor.
    """
    n_shared = int(rng.choice(4, p=np.asarray(cfg.shared_weights) / np.sum(cfg.shared_weights)))
    order = [ATTRIBUTES[i] for i in rng.permutation(len(ATTRIBUTES))]
    changeable = [a for a in order if any(v != target[a] for v in vocab.values(a))]
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


def _make_distractor(scene: _Scene, attrs: dict[str, str]) -> _Object:
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
    obj = scene.linear(px, attrs["motion"], (a, b), (a, b), speed)
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
            if all(_gap_ok(d, o, cfg.margin_px) for o in [target, *occluders, *distractors]):
                distractors.append(d)
                break
    objects = [*distractors, target, *occluders]  # drawing order: occluders on top
    occlusion = _occlusion(target, occluders, tube, scene.W, scene.H)
    a = target.attributes
    template = int(rng.integers(len(cfg.templates)))
    query = cfg.templates[template].format(
        size=a["size"], colour=a["colour"], shape=a["shape"], motion=_motion_phrase(event, a["motion"])
    )
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
        mask = _shape_mask(o.attributes["shape"], o.px)
        colour = np.asarray(PALETTE[o.attributes["colour"]], dtype=np.uint8)
        for t in np.flatnonzero(o.visible):
            x, y = int(round(o.xs[t])), int(round(o.ys[t]))
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + o.px, cfg.width), min(y + o.px, cfg.height)
            if x0 >= x1 or y0 >= y1:
                continue
            m = mask[y0 - y : y1 - y, x0 - x : x1 - x]
            frames[t, y0:y1, x0:x1][m] = colour
    if any(cfg.lighting):
        frames = _light(frames, cfg.lighting)
    return frames


def _light(frames: np.ndarray, amplitude: Sequence[float]) -> np.ndarray:
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


def pick_codec(preferred: str = "libx264") -> str:
    """``preferred`` when PyAV can encode it, else ``mpeg4`` (both decode in decord)."""
    import av

    for name in (preferred, "libx264", "mpeg4"):
        if name in av.codecs_available:
            if name != preferred:
                logger.warning("codec %s is not available in PyAV; writing %s", preferred, name)
            return name
    raise RuntimeError("PyAV can encode neither libx264 nor mpeg4; install a PyAV wheel with FFmpeg codecs")


def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "libx264", crf: int = 18) -> Path:
    """Encode ``(N, H, W, 3)`` uint8 RGB frames as an mp4 (yuv420p; H and W even)."""
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            stream.bit_rate = 2_000_000
        # one thread: deterministic output, and the generator's 2 processes already fill 2 cores
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _hcstvg_record(cfg: SynthConfig, target: _Object, tube: tuple[int, int], query: str) -> dict[str, Any]:
    """One HC-STVG v2 raw record (formats README §1): 1-based inclusive frames, xywh boxes."""
    t0, t1 = tube
    boxes = _clipped(target.boxes(), cfg.width, cfg.height)[t0 : t1 + 1]
    return {
        "st_frame": t0 + 1,
        "ed_frame": t1 + 1,
        "st_time": round(t0 / cfg.fps, 4),
        "ed_time": round((t1 + 1) / cfg.fps, 4),
        "img_num": cfg.num_frames,
        "img_size": [cfg.height, cfg.width],
        "bbox": [[int(b[0]), int(b[1]), int(b[2] - b[0]), int(b[3] - b[1])] for b in boxes],
        "English": query,
    }


def _split_seed(seed: int, split: str, index: int) -> list[int]:
    return [int(seed), SPLITS.index(split), int(index)]


def video_name(split: str, index: int) -> str:
    """File name of a generated video (the annotation key)."""
    return f"synth_{split}_{index:05d}.mp4"


def _make_one(job: tuple[dict, str, int, int, str, str]) -> tuple[str, dict, dict]:
    """Render and encode one video into ``video_dir``; returns (key, record, meta). Pool worker."""
    cfg_dict, split, index, seed, video_dir, codec = job
    cfg = SynthConfig.from_dict(cfg_dict)
    scene = make_scene(cfg, split, np.random.default_rng(_split_seed(seed, split, index)))
    name = video_name(split, index)
    write_video(Path(video_dir) / name, render_frames(cfg, scene["objects"]), cfg.fps, codec, cfg.crf)
    return name, _hcstvg_record(cfg, scene["target"], scene["tube"], scene["query"]), scene["meta"]


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def generate_synthetic(
    out_dir: str | Path,
    n_train: int = 3000,
    n_val: int = 50,
    n_test: int = 100,
    seed: int = 0,
    config: SynthConfig | None = None,
    progress: bool = True,
    *,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic benchmark to ``out_dir`` (layout in the module docstring); returns it.

    Atomic: everything is built in a hidden folder beside ``out_dir`` and renamed into place
    at the end; on any error the folder is removed and ``out_dir`` is untouched.
    ``workers`` processes render (default ``min(2, cpu_count)``; 1 renders in-process);
    an existing ``out_dir`` raises ``FileExistsError`` unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    cfg = config or SynthConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; remove it or pass overwrite=True")
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"split sizes must be >= 0, got {counts}")
    codec = pick_codec(cfg.codec)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.partial-{uuid.uuid4().hex[:8]}"
    (tmp / "videos").mkdir(parents=True)
    (tmp / "annotations").mkdir()
    cfg_dict = cfg.to_dict()
    jobs = [(cfg_dict, split, i, seed, str(tmp / "videos"), codec) for split in SPLITS for i in range(counts[split])]
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    try:
        bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
        if n_workers > 1 and len(jobs) >= 16:
            # spawn, not fork: the caller may hold threads (torch, tqdm) that fork would copy mid-lock
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = []
                for r in pool.map(_make_one, jobs, chunksize=8):
                    results.append(r)
                    bar.update()
        else:
            results = []
            for job in jobs:
                results.append(_make_one(job))
                bar.update()
        bar.close()
        pos = 0
        for split in SPLITS:
            chunk = results[pos : pos + counts[split]]
            pos += counts[split]
            _write_json(tmp / "annotations" / f"{split}_v2.json", {k: rec for k, rec, _ in chunk})
            _write_json(tmp / "annotations" / f"{split}_meta.json", {k: meta for k, _, meta in chunk})
        manifest = {
            "name": DATASET_NAME,
            "generator": "stvg_lab.data.synth",
            "generator_version": GENERATOR_VERSION,
            "seed": int(seed),
            "clip_seconds": cfg.clip_seconds,
            "fps": cfg.fps,
            "num_frames": cfg.num_frames,
            "width": cfg.width,
            "height": cfg.height,
            "codec": codec,
            "counts": counts,
            "annotation_format": "hcstvg-v2",
            "config": cfg_dict,
        }
        _write_json(tmp / "dataset.json", manifest)
        if out_dir.exists():  # overwrite: swap, then delete the old copy
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            out_dir.rename(old)
            tmp.rename(out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("wrote %d synthetic videos to %s", len(jobs), out_dir)
    return out_dir


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``<root>/dataset.json``, with a message saying how to make it when it is missing."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; generate the dataset with `stvg-lab data synth --out {root}`")
    return json.loads(path.read_text())


def ensure_synthetic(
    root: str | Path, n_train: int = 3000, n_val: int = 50, n_test: int = 100, seed: int = 0, *, progress: bool = False
) -> Path:
    """The synthetic dataset at ``root``, generated (these counts, ``seed``) when it is missing.

    An existing dataset (``dataset.json`` present) is used as it is. A folder that exists and
    is not empty but has no ``dataset.json`` is not overwritten: ValueError says what to do.
    Two processes asking at once are fine: generation is atomic, and the loser of the final
    rename finds the winner's identical, seeded dataset.
    """
    root = Path(root)
    if (root / "dataset.json").is_file():
        return root
    if root.exists() and any(root.iterdir()):
        raise ValueError(
            f"{root} exists but holds no dataset.json, so it is not a synthetic dataset; give the folder of one "
            "(`stvg-lab data synth --out <dir>`), or remove the folder to have it generated there"
        )
    if root.exists():
        root.rmdir()
    logger.info("generating the synthetic dataset (train %d, val %d, test %d) in %s", n_train, n_val, n_test, root)
    try:
        generate_synthetic(root, n_train, n_val, n_test, seed=seed, progress=progress,
                           workers=1 if n_train + n_val + n_test < 64 else None)
    except OSError:
        if not (root / "dataset.json").is_file():
            raise
    return root


def load_synthetic(root: str | Path, split: str) -> list[Sample]:
    """Samples of one split, read through the HC-STVG v2 loader, with the meta tags in ``extras``.

    ``extras`` gains ``small``, ``short``, ``occluded``, ``occlusion``, ``attributes``,
    ``event``, ``n_distractors``, ``distractors``, ``template`` and ``tube_seconds``;
    ``dataset`` is ``"synthetic"``.
    """
    from stvg_lab.data.hcstvg import load_hcstvg

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    manifest = read_manifest(root)
    ann = root / "annotations" / f"{split}_v2.json"
    meta_path = root / "annotations" / f"{split}_meta.json"
    samples = load_hcstvg(ann, video_dir=root / "videos", version=2, clip_seconds=float(manifest["clip_seconds"]))
    meta = json.loads(meta_path.read_text())
    for s in samples:
        key = s.extras.get("key") or (Path(s.video).name if s.video else f"{s.id}.mp4")
        if key not in meta:
            raise ValueError(f"{meta_path}: no entry for video {key!r} of {ann}; regenerate the dataset")
        s.dataset = DATASET_NAME
        s.extras.update(meta[key])
    return samples
