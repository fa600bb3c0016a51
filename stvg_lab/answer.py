"""The answer format (Eq. 1-2): prompt, serializer and strict parser.

The model answers ``<time> ts - te </time> <think_bbox> ... </think_bbox> <pred_bbox> ... </pred_bbox>``
where ``ts..te`` are indices of the frames the model was shown (sampled at 2 fps, counted
from 0) and each box list holds one box per index in ``ts..te``.

Coordinate space (the paper leaves it open): integer pixels of the frame *as the model sees
it*, i.e. after the resize to at most 336 px and to multiples of 28 (``stvg_lab.video``).
That is Qwen2.5-VL's native grounding convention (absolute coordinates on the resized
input), so a real checkpoint starts from coordinates it already knows; evaluation maps them
back to original pixels.

A format is a small frozen object so that variants are one-line choices:

* ``paper``: ``<time> 5 - 7 </time> <think_bbox> 5. [x1,y1,x2,y2], 6. [...], 7. [...] </think_bbox> <pred_bbox> ... </pred_bbox>``
* ``compact``: no frame labels and no spaces (``<time>5-7</time><think_bbox>[..][..][..]</think_bbox>...``);
  box ``k`` of a list belongs to frame ``ts + k``. About a third fewer tokens per box.
* ``no_think`` / ``compact_no_think``: the same without ``<think_bbox>`` (Table 5).

The parser is strict on purpose (a GRPO policy games any looseness): each tag exactly once
and in order, nothing but white space outside the tags, only the box grammar inside a box
list, unique frame labels, ``ts <= te``, ASCII digits and white space only. Any violation
returns a :class:`ParsedAnswer` whose ``error`` names the reason; it never raises.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

MAX_ANSWER_CHARS = 20_000  # longer completions are rejected unparsed: bounded reward cost
ERROR_CODES: tuple[str, ...] = (
    "not_text",
    "empty",
    "too_long",
    "missing_tag",
    "unexpected_tag",
    "repeated_tag",
    "tag_order",
    "text_outside_tags",
    "bad_span",
    "reversed_span",
    "bad_boxes",
    "duplicate_frame",
)

# re.ASCII: ``\d`` is 0-9 only and ``\s`` ASCII white space only. Without it ``\d`` accepts
# any Unicode digit ("٣" parses as 3) and ``\s`` any Unicode space, a looser grammar than
# the prompt teaches.
_NUM = r"\d{1,5}(?:\.\d{1,3})?"
_BOX = rf"\[\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*\]"
_BOX_RE = re.compile(_BOX, re.ASCII)
_LABELLED_ITEM = re.compile(rf"\s*(\d{{1,4}})\s*\.\s*{_BOX}\s*", re.ASCII)
_PLAIN_ITEM = re.compile(rf"\s*{_BOX}\s*", re.ASCII)
_SPAN_RE = re.compile(r"\s*(\d{1,4})\s*-\s*(\d{1,4})\s*", re.ASCII)
_BLANK_RE = re.compile(r"\s*", re.ASCII)  # what may lie outside the tags


def _is_blank(text: str) -> bool:
    return _BLANK_RE.fullmatch(text) is not None


@dataclass(frozen=True)
class AnswerFormat:
    """How an answer is written. ``think=False`` drops ``<think_bbox>`` (Table 5)."""

    name: str = "paper"
    think: bool = True
    frame_labels: bool = True  # "5. [..]" (paper) or bare "[..]" in span order (compact)
    spaces: bool = True  # spaces around tags and separators, as in the paper's example

    @property
    def tags(self) -> tuple[str, ...]:
        return ("time", "think_bbox", "pred_bbox") if self.think else ("time", "pred_bbox")


FORMATS: dict[str, AnswerFormat] = {
    "paper": AnswerFormat("paper"),
    "compact": AnswerFormat("compact", frame_labels=False, spaces=False),
    "no_think": AnswerFormat("no_think", think=False),
    "compact_no_think": AnswerFormat("compact_no_think", think=False, frame_labels=False, spaces=False),
    # compact with the paper's frame labels: each box names its frame, a cue to read that frame's tokens
    # (bench/LEARNING.md round 13: the stand-in's answers fetch half the place its video tokens hold)
    "compact_labels": AnswerFormat("compact_labels", spaces=False),
    "compact_labels_no_think": AnswerFormat("compact_labels_no_think", think=False, spaces=False),
}


def get_format(fmt: "str | AnswerFormat | None") -> AnswerFormat:
    """Resolve a format name (or pass an :class:`AnswerFormat` through); None means paper."""
    if fmt is None:
        return FORMATS["paper"]
    if isinstance(fmt, AnswerFormat):
        return fmt
    try:
        return FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown answer format {fmt!r}; choose one of {sorted(FORMATS)}") from None


def without_think(fmt: "str | AnswerFormat") -> str:
    """The name of the format that writes answers as ``fmt`` does but without ``<think_bbox>`` (Table 5's switch).

    Derived from :data:`FORMATS` (same labels and spacing, ``think=False``), so a new format needs
    no second table; a format without think maps to itself. ValueError when :data:`FORMATS` has no twin.
    """
    f = get_format(fmt)
    twins = [name for name, g in FORMATS.items() if not g.think and (g.frame_labels, g.spaces) == (f.frame_labels, f.spaces)]
    if not twins:
        raise ValueError(f"answer format {f.name!r} has no twin without <think_bbox> in FORMATS")
    return twins[0]


@dataclass
class ParsedAnswer:
    """What Eq. 2 extracts: span, think boxes and pred boxes by sampled-frame index.

    ``think`` is None for a format without ``<think_bbox>``. On failure ``error`` is a short
    code (``missing_tag``, ``repeated_tag``, ``unexpected_tag`` (a tag of another format,
    e.g. ``<think_bbox>`` in ``no_think``), ``tag_order``, ``text_outside_tags``,
    ``bad_span``, ``reversed_span``, ``bad_boxes``, ``duplicate_frame``, ``too_long``,
    ``empty``, ``not_text``) and ``detail`` says where. ``ERROR_CODES`` lists them.
    """

    span: tuple[int, int] | None = None
    think: dict[int, list[float]] | None = None
    pred: dict[int, list[float]] | None = None
    error: str | None = None
    detail: str = ""
    format: str = "paper"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def consistent(self) -> bool:
        """Eq. 4: every box list covers exactly the frames ``ts..te``."""
        if not self.ok or self.span is None:
            return False
        ts, te = self.span
        lists = [self.pred] + ([self.think] if self.think is not None else [])
        # frame keys are unique ints, so "same set as ts..te" is "as many, all inside"; this
        # avoids building a set of up to 10^4 frames for a long claimed span
        return all(
            lst is not None and len(lst) == te - ts + 1 and all(ts <= f <= te for f in lst) for lst in lists
        )


def _fail(code: str, detail: str, fmt: AnswerFormat) -> ParsedAnswer:
    return ParsedAnswer(error=code, detail=detail, format=fmt.name)


def _parse_boxes(body: str, span: tuple[int, int], fmt: AnswerFormat, tag: str):
    """Parse one box list; returns ``(dict, None)`` or ``(None, (code, detail))``."""
    item_re = _LABELLED_ITEM if fmt.frame_labels else _PLAIN_ITEM
    boxes: dict[int, list[float]] = {}
    pos, k = 0, 0
    while True:
        m = item_re.match(body, pos)
        if m is None:
            return None, ("bad_boxes", f"<{tag}>: unexpected text at char {pos}: {body[pos:pos + 30]!r}")
        if fmt.frame_labels:
            frame, coords = int(m.group(1)), m.groups()[1:]
        else:
            frame, coords = span[0] + k, m.groups()
        if frame in boxes:
            return None, ("duplicate_frame", f"<{tag}>: frame {frame} appears twice")
        boxes[frame] = [float(c) for c in coords]
        pos, k = m.end(), k + 1
        if pos == len(body):
            return boxes, None
        if body[pos] == ",":
            pos += 1
        elif fmt.frame_labels or body[pos] != "[":
            return None, ("bad_boxes", f"<{tag}>: expected ',' at char {pos}: {body[pos:pos + 30]!r}")


def parse_answer(text: object, fmt: "str | AnswerFormat | None" = None) -> ParsedAnswer:
    """Eq. 2 (RegexParse): split an answer into span, think boxes and pred boxes. Never raises."""
    fmt = get_format(fmt)
    if not isinstance(text, str):
        return _fail("not_text", f"expected a string, got {type(text).__name__}", fmt)
    if _is_blank(text):
        return _fail("empty", "the answer is empty", fmt)
    if len(text) > MAX_ANSWER_CHARS:
        return _fail("too_long", f"{len(text)} characters > {MAX_ANSWER_CHARS}", fmt)
    known = ("time", "think_bbox", "pred_bbox")
    for tag in known:
        for t in (f"<{tag}>", f"</{tag}>"):
            n = text.count(t)
            if tag not in fmt.tags and n:
                return _fail("unexpected_tag", f"{t} is not part of the {fmt.name} format", fmt)
            if tag in fmt.tags and n == 0:
                return _fail("missing_tag", f"{t} is missing", fmt)
            if n > 1:
                return _fail("repeated_tag", f"{t} appears {n} times", fmt)
    # Each tag occurs exactly once. All six positions must ascend (order is checked before
    # the gaps, so a swapped pair reads as tag_order, not as text outside the tags); then
    # only white space may lie between the sections.
    marks = [text.find(t) for tag in fmt.tags for t in (f"<{tag}>", f"</{tag}>")]
    if any(a >= b for a, b in zip(marks, marks[1:])):
        order = " ".join(f"<{tag}>...</{tag}>" for tag in fmt.tags)
        return _fail("tag_order", f"the tags must come in the order {order}", fmt)
    bodies: dict[str, str] = {}
    pos = 0
    for tag in fmt.tags:
        open_at, close_at = text.find(f"<{tag}>"), text.find(f"</{tag}>")
        if not _is_blank(text[pos:open_at]):
            return _fail("text_outside_tags", f"text before <{tag}>: {text[pos:open_at].strip()[:30]!r}", fmt)
        bodies[tag] = text[open_at + len(tag) + 2 : close_at]
        pos = close_at + len(tag) + 3
    if not _is_blank(text[pos:]):
        return _fail("text_outside_tags", f"text after the last tag: {text[pos:].strip()[:30]!r}", fmt)

    m = _SPAN_RE.fullmatch(bodies["time"])
    if m is None:
        return _fail("bad_span", f"<time> must hold 'ts - te', got {bodies['time'][:30]!r}", fmt)
    span = (int(m.group(1)), int(m.group(2)))
    if span[0] > span[1]:
        return _fail("reversed_span", f"span {span[0]} - {span[1]} ends before it starts", fmt)

    parsed = ParsedAnswer(span=span, format=fmt.name)
    for tag in fmt.tags[1:]:
        boxes, err = _parse_boxes(bodies[tag], span, fmt, tag)
        if err is not None:
            return _fail(*err, fmt)
        setattr(parsed, "think" if tag == "think_bbox" else "pred", boxes)
    return parsed


def format_box(box: Sequence[float]) -> str:
    """One box as every answer format writes it: ``[x1,y1,x2,y2]``, coordinates rounded to integers."""
    return "[" + ",".join(str(int(round(float(v)))) for v in box) + "]"


def _boxes_text(boxes: Mapping[int, Sequence[float]], fmt: AnswerFormat) -> str:
    frames = sorted(boxes)
    if fmt.frame_labels:
        return (", " if fmt.spaces else ",").join(f"{f}. {format_box(boxes[f])}" for f in frames)
    return "".join(format_box(boxes[f]) for f in frames)


def format_answer(
    span: tuple[int, int],
    pred: Mapping[int, Sequence[float]],
    think: Mapping[int, Sequence[float]] | None = None,
    fmt: "str | AnswerFormat | None" = None,
) -> str:
    """Serialize a tube as the target string of ``fmt``; coordinates rounded to integers.

    ``think`` defaults to ``pred`` when the format has a think list and none is given.
    For the compact (unlabelled) formats the boxes must cover ``span`` exactly.
    """
    fmt = get_format(fmt)
    if not fmt.frame_labels and sorted(pred) != list(range(span[0], span[1] + 1)):
        raise ValueError(f"format {fmt.name!r} needs one box per frame {span[0]}..{span[1]}")
    sp = " " if fmt.spaces else ""
    parts = [f"<time>{sp}{span[0]}{sp}-{sp}{span[1]}{sp}</time>"]
    if fmt.think:
        parts.append(f"<think_bbox>{sp}{_boxes_text(think if think is not None else pred, fmt)}{sp}</think_bbox>")
    parts.append(f"<pred_bbox>{sp}{_boxes_text(pred, fmt)}{sp}</pred_bbox>")
    return sp.join(parts)


@dataclass(frozen=True)
class PromptSpec:
    """What the prompt tells the model about its input."""

    num_frames: int
    width: int
    height: int
    fps: float = 2.0
    extra: Mapping[str, str] = field(default_factory=dict)


def build_prompt(query: str, spec: PromptSpec, fmt: "str | AnswerFormat | None" = None) -> str:
    """The instruction that asks for an answer (the text half of Eq. 1's input)."""
    fmt = get_format(fmt)
    n, w, h = spec.num_frames, spec.width, spec.height
    example = format_answer(
        (1, 2),
        {1: [10, 20, 50, 80], 2: [12, 20, 52, 80]},
        {1: [8, 18, 50, 82], 2: [10, 18, 52, 82]},
        fmt,
    )
    steps = (
        "first give the time span, then a first guess of the object's box in every frame of "
        "the span inside <think_bbox>, then the refined boxes inside <pred_bbox>"
        if fmt.think
        else "first give the time span, then the object's box in every frame of the span inside <pred_bbox>"
    )
    return (
        f"The video has {n} frames sampled at {spec.fps:g} fps, numbered 0 to {n - 1}; each frame is "
        f"{w}x{h} pixels. Find the object described by: \"{query.strip()}\". "
        f"Answer with the frames where it is described ({steps}). Boxes are [x1,y1,x2,y2] in "
        f"pixels of the frames you see. Example of the format: {example}"
    )
