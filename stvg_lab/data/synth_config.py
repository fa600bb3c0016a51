"""The synthetic benchmark's knobs: attribute words, :class:`Vocabulary`, :class:`SynthConfig` and its :data:`PRESETS`.

What the benchmark is: ``stvg_lab.data.synth``. Drawing and rendering scenes from a config:
``stvg_lab.data.synth_scene``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping, Sequence

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
    # The largest share of an object's frames (the target's tube, a distractor's visible frames)
    # whose box centre may lie in the frame's centre quarter (the middle half of each axis);
    # geometry drawn beyond it is drawn again. Why: with 30-40 px objects in 112 px frames about
    # two thirds of centres fall there, so one constant central box out-scores a stand-in's coarse
    # reading and GRPO learns that box (bench/LEARNING.md round 7). 1.0 draws as generator 2 did.
    max_centre_share: float = 1.0
    codec: str = "libx264"
    crf: int = 18

    @property
    def named_attributes(self) -> tuple[str, ...]:
        """The attributes every template names. Distractors differ from the target in one of these,
        so a query never fits a distractor; templates without ``{motion}`` give a query with no
        motion or event words, hence no prior on where the boxes go (bench/LEARNING.md round 4)."""
        return tuple(a for a in ATTRIBUTES if all("{" + a + "}" in t for t in self.templates))

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError(f"SynthConfig: width and height must be even for yuv420p, got {self.width}x{self.height}")
        if max(self.large_px) + 2 * self.margin_px > min(self.width, self.height):
            raise ValueError("SynthConfig: large_px does not fit in the frame")
        if not set(self.event_weights) <= set(EVENT_KINDS) or sum(self.event_weights.values()) <= 0:
            raise ValueError(f"SynthConfig.event_weights: keys among {EVENT_KINDS} with a positive sum")
        if self.event_seconds[1] >= self.clip_seconds:
            raise ValueError("SynthConfig: event_seconds must be shorter than clip_seconds")
        if not self.templates or not self.named_attributes:
            raise ValueError("SynthConfig.templates: give templates that all name at least one of {size} {colour} {shape} {motion}")
        if not 0.0 <= self.max_centre_share <= 1.0:
            raise ValueError(f"SynthConfig.max_centre_share must lie in [0, 1], got {self.max_centre_share}")
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
        """Inverse of :meth:`to_dict` (lists back to tuples, vocabularies rebuilt).

        A field the dict lacks takes its default: a field added later defaults to what the
        generator did before it existed, so older ``dataset.json`` files read as what they were.
        """
        d = dict(d)
        for key in ("target_vocabulary", "distractor_vocabulary"):
            d[key] = {s: Vocabulary(**v) for s, v in d.get(key, {}).items()}
        if "vocabulary" in d:
            d["vocabulary"] = Vocabulary(**d["vocabulary"])
        for key, value in list(d.items()):
            if isinstance(value, list):
                d[key] = tuple(value)
        return cls(**d)


def full_config(d: Mapping[str, Any]) -> dict[str, Any]:
    """A ``dataset.json`` config with the fields it lacks at their defaults, as JSON values.

    Compare these, not the raw dicts: a dataset written before a field existed was drawn as that
    field's default draws (e.g. ``max_centre_share``), so it is the same benchmark.
    """
    return SynthConfig.from_dict(d).to_dict()


# Named configurations (``stvg-lab data synth --preset NAME``).
PRESETS: dict[str, SynthConfig] = {
    "default": SynthConfig(),
    "hard": SynthConfig(
        width=224, height=224, clip_seconds=7.0, background=(16, 16, 24), n_distractors=(0, 3),
        event_seconds=(2.0, 4.5), p_short=0.15, p_occluded=0.15,
        event_weights={"appear": 0.5, "move": 0.3, "cross": 0.2}, lighting=(0.0, 0.0, 0.0),
    ),
    # the default with objects kept off the centre quarter, so that no constant box scores well
    # (bench/LEARNING.md round 8)
    "spread": SynthConfig(max_centre_share=0.0),
    # the default with 1-2 distractors that each differ from the target in one named attribute only
    # (a quarter each: size, colour, shape, motion), so three quarters of the clips cannot be solved
    # by the size word, which is all the shipped stand-in binds (bench/LEARNING.md rounds 15-16)
    "one_attribute": SynthConfig(n_distractors=(1, 2), shared_weights=(0.0, 0.0, 0.0, 1.0)),
    # sentences that name the colour alone ("the red shape"), 1-2 distractors of the target's size, shape
    # and motion in another colour: the colour word is the only way to the target (bench/LEARNING.md round 16)
    "colour_only": SynthConfig(n_distractors=(1, 2), shared_weights=(0.0, 0.0, 0.0, 1.0),
                               templates=("the {colour} shape", "find the {colour} shape")),
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
