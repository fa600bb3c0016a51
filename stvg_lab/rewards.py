"""The multi-dimensional reward of STVG-o1 (§3.2, Eq. 3-10) as TRL reward functions.

Each reward is a plain function ``f(completions, **kwargs) -> list[float]``, one behaviour
each, as in TRL's ``trl/rewards`` and open-r1's ``rewards.py``. Variants (Tables 6-8) come
from small factories whose result carries a readable ``__name__``, which TRL uses for the
``rewards/<name>/mean`` log columns. ``REWARDS`` maps each name to its function.

Inputs (the contract with the GRPO trainer and the datasets): ``stvg_lab.reward_inputs``.

Choices the paper leaves open, and the hardening against a policy that games the reward:

* **Parse failure scores 0 everywhere.** Every reward is 0 for an answer that
  ``parse_answer`` rejects, the format reward included.
* **Clipping.** Predicted and ground-truth boxes are clipped to ``[0, W] x [0, H]`` before
  scoring, so far-away coordinates cannot push a term outside its range.
* **L1 normalisation.** ``||b - b_gt||_1`` in Eq. 7 is the mean over the four coordinates
  of ``|Δ|``, x divided by ``W`` and y by ``H`` (after clipping), so ``L1 ∈ [0, 1]``.
  GIoU is computed on the same normalised boxes; it does not change under a per-axis
  scaling. The per-frame summand ``GIoU - L1`` lies in ``[-2, 1]``.
* **Missing boxes.** A frame of the temporal intersection (Eq. 6) where the answer has no
  box (an inconsistent answer) scores the per-frame floor: -2 for ``GIoU - L1``, -1 for
  either term alone. Leaving a box out therefore never pays.
* **Extra boxes.** A box for a frame outside the claimed span is not in Eq. 7, so by default
  (``count_rule="free"``) it costs nothing but ``R_c``. With the asymmetry above, a policy unsure
  of the count gains by writing too many: bench/LEARNING.md round 8 measured GRPO lengthening
  the lists (greedy answers one box short 37 % -> 3 %, one or more long 22 % -> 44 %) and the longer
  lists breaking. ``count_rule="extra"`` (variant ``count_penalty``) adds each extra box to
  Eq. 7's mean at the per-frame floor, so one box too many costs about what one too few does.
  A consistent answer scores the same under every rule. Measured, it over-corrects to short
  lists: a missing box still costs only where the ground truth has a box. ``count_rule="span"``
  (variant ``count_symmetric``) also floors each frame of the claimed span without a box, so
  neither too many nor too few boxes pays anywhere.
* **Intersection vs union.** Eq. 7 averages over the spans' intersection; vIoU (the metric)
  sums IoU over the intersection but divides by the union. So ``R_spa`` pays for boxes and not
  for the span, and bench/LEARNING.md round 9 measured GRPO raising it on held-out answers (by
  longer lists, or one central box) while m_vIoU stayed put. ``count_rule="union"`` (variant
  ``union_spatial``) has vIoU's shape: each frame's ``GIoU - L1`` is rescaled to ``[0, 1]`` (the
  floor -2 maps to 0), and the mean runs over the union, each ground-truth box outside the
  intersection, each frame of the claimed span outside the ground-truth span and each box outside
  the claimed span (as ``"extra"``) adding a 0; an empty intersection scores 0, as vIoU does. So
  ``R_spa ∈ [0, 1]``, ``R_s ∈ [0, 2]``, ``R_k ∈ [0, 1]``. Why rescaled: with the floor at -2 the
  same mean made a typical answer's total negative, below the 0 of an answer that does not parse,
  and GRPO learned to break the format (5 % of greedy answers parsed; round 9).
* **The metric itself.** Rescaled ``GIoU - L1`` gives a poor box about half a well-placed one's
  score, so under the union rule a frame added to the intersection is worth more than most box
  improvements; round 10 measured GRPO trading boxes for spans. ``terms=("iou",)`` scores each
  frame by plain IoU (range ``[0, 1]``, missing box 0), so ``count_rule="union"`` with it is vIoU
  exactly, on the model's frame grid (variant ``viou_metric``, bench/LEARNING.md round 11).
* **The metric with a slope for misses.** Plain IoU pays 0 for every box that misses, however near;
  on the spread benchmark 44 % of a plateaued SFT's pred boxes miss (bench/LEARNING.md round 13), so
  for them the metric gives GRPO no direction. ``terms=("giou", "iou")`` sums the two per frame,
  ``2 IoU - (C - U) / C`` (C the enclosing box), which still rises with overlap and also rises as a
  miss comes nearer; under the union rule it is rescaled from ``(-1, 2)`` to ``[0, 1]``, so a miss
  scores at most 1/3 (touching), a missing box 0 (variant ``viou_giou``). IoU may join GIoU only: not L1.
* **The metric's box part alone.** Over the union, vIoU also pays for a shorter span or list, and GRPO
  raised it by trimming (bench/LEARNING.md round 14). ``terms=("iou",)`` with ``count_rule="extra"``
  averages plain IoU over the intersection, each box outside the claimed span adding a 0: the span is
  left to ``R_t`` and only better boxes raise it (variant ``iou_intersection``, round 15).
* **Which object, not where on it.** At the rollout temperature nearly every sample of a group moves
  the greedy answer's boxes on the same objects (mean IoU with them 0.61), and such a move is what
  beats the greedy answer in 83 % of the groups; a sample that boxes another object does so in 12 %
  (bench/LEARNING.md round 25). ``terms=("centre",)`` scores a frame 1 when the box's centre lies in
  the ground-truth box, else 0 (range ``[0, 1]``): a move on the named object changes nothing, a box
  on a distractor or the background scores 0, so Eq. 11 ranks a group by the objects its answers box.
  It pays nothing for the box's geometry, and GRPO under it lost box quality (−1.7 m_vIoU against
  GIoU − L1, three seeds) without boxing the target more often (variant ``centre_hit``, round 25).
  It stands alone.
* **Annotation gaps.** A frame of the intersection with no ground-truth box is left out of
  both the sum and the count of Eq. 7. If no frame is left, ``R_spa = 0``.
* **Empty intersection.** The paper sets the spatial reward to 0 (``empty_overlap="zero"``,
  the default). That pays a policy to move its span off the ground truth whenever its
  ``R_spa`` would be negative, so ``empty_overlap="floor"`` (variant ``overlap_penalty``)
  scores the per-frame floor for each box list instead (-4 with think, -2 without). The
  think reward is 0 on an empty intersection under both rules.
* **Inverted boxes** (``x2 < x1``) are not reordered: they have zero area, as in
  ``stvg_lab.geometry``, so they score no better than a degenerate box.
* **Think reward incentive.** ``R_s + λk R_k = (1 + λk) R_spa^p + (1 - λk) R_spa^t`` when
  ``R_spa^p > R_spa^t``. For ``λk < 1`` a worse think list still lowers the total, so
  sabotaging ``<think_bbox>`` does not pay. At ``λk = 1`` it is neutral, and above 1 it pays.

Bounds (``REWARD_BOUNDS`` holds them by name, tests check them on arbitrary text):
``R_f, R_c, R_t ∈ [0, 1]``; ``R_spa ∈ [-2, 1]``; ``R_s ∈ [-4, 2]``; ``R_k ∈ [0, 3]``;
total ``R ∈ [-3, 5]`` for ``λk ≤ 1`` (``R_s`` and ``R_k`` cannot both be high).
GIoU only: per frame ``[-1, 1]``, ``R_s ∈ [-2, 2]``, ``R_k ∈ [0, 2]``. L1 only: per frame
``-L1 ∈ [-1, 0]``, ``R_s ∈ [-2, 0]``, ``R_k ∈ [0, 1]``. Centre hits: per frame ``{0, 1}``,
``R_s ∈ [0, 2]``, ``R_k ∈ [0, 1]``.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from stvg_lab.answer import ParsedAnswer, get_format, parse_answer
from stvg_lab.geometry import box_giou, box_iou, box_l1, centre_inside, span_intersection, temporal_iou
from stvg_lab.reward_inputs import (
    GroundTruth,
    completion_text,
    dataset_column,
    ground_truth,
    ground_truth_span,
    ground_truths,
    parse_completions,
)

Terms = tuple[str, ...]
RewardFunc = Callable[..., list[float]]

DEFAULT_TERMS: Terms = ("giou", "l1")
DEFAULT_LAMBDA_K = 0.5
EMPTY_OVERLAP_RULES: tuple[str, ...] = ("zero", "floor")
COUNT_RULES: tuple[str, ...] = ("free", "extra", "span", "union")
_COUNT_SUFFIX = {"free": "", "extra": "_extra_floor", "span": "_count_floor", "union": "_union"}  # reward __name__ suffix per rule
# per-frame range of each term of the Eq. 7 summand: +GIoU and -L1 (normalised L1 ∈ [0, 1])
_TERM_BOUNDS: dict[str, tuple[float, float]] = {"giou": (-1.0, 1.0), "l1": (-1.0, 0.0), "iou": (0.0, 1.0), "centre": (0.0, 1.0)}


def _check_terms(terms: Sequence[str]) -> Terms:
    """Validate ``terms`` and return them in the canonical order (giou, l1, iou); ``iou`` may join ``giou`` only, ``centre`` nothing."""
    if isinstance(terms, str):
        terms = (terms,)
    unknown = [t for t in terms if t not in _TERM_BOUNDS]
    if not terms or unknown or len(set(terms)) != len(terms):
        raise ValueError(f"terms must be a non-empty subset of {tuple(_TERM_BOUNDS)} without repeats; got {terms!r}")
    if "iou" in terms and "l1" in terms:
        raise ValueError(f"terms: 'iou' (the metric's per-frame score) takes 'giou' as a slope for misses, not 'l1'; got {terms!r}")
    if "centre" in terms and len(terms) > 1:
        raise ValueError(f"terms: 'centre' (a hit on the object, not its geometry) stands alone; got {terms!r}")
    return tuple(t for t in _TERM_BOUNDS if t in terms)


def _check_empty_overlap(rule: str) -> str:
    if rule not in EMPTY_OVERLAP_RULES:
        raise ValueError(f"empty_overlap must be one of {EMPTY_OVERLAP_RULES}; got {rule!r}")
    return rule


def _check_count_rule(rule: str) -> str:
    if rule not in COUNT_RULES:
        raise ValueError(f"count_rule must be one of {COUNT_RULES}; got {rule!r}")
    return rule


def _check_rule_pair(empty_overlap: str, count_rule: str) -> None:
    """The union rule scores an empty intersection 0, as vIoU does, so it refuses the floor there."""
    if count_rule == "union" and empty_overlap == "floor":
        raise ValueError("count_rule='union' scores an empty intersection 0, as vIoU does; it takes empty_overlap='zero'")


def check_lambda(lambda_k: float) -> float:
    if not (isinstance(lambda_k, (int, float)) and math.isfinite(lambda_k) and lambda_k >= 0):
        raise ValueError(f"lambda_k must be a finite number >= 0; got {lambda_k!r}")
    return float(lambda_k)


def frame_bounds(terms: Sequence[str] = DEFAULT_TERMS) -> tuple[float, float]:
    """Range of the per-frame summand of Eq. 7 for ``terms``: (-2, 1) for GIoU - L1."""
    terms = _check_terms(terms)
    return sum(_TERM_BOUNDS[t][0] for t in terms), sum(_TERM_BOUNDS[t][1] for t in terms)


def scored_bounds(terms: Sequence[str] = DEFAULT_TERMS, count_rule: str = "free") -> tuple[float, float]:
    """Range of what one frame adds to Eq. 7's mean: :func:`frame_bounds`, or ``(0, 1)`` under the
    union rule, which rescales each frame to vIoU's range (module docstring)."""
    return (0.0, 1.0) if _check_count_rule(count_rule) == "union" else frame_bounds(terms)


def spatial_bounds(terms: Sequence[str] = DEFAULT_TERMS, count_rule: str = "free") -> tuple[float, float]:
    """Range of ``R_s`` (Eq. 8), two box lists: (-4, 2) for GIoU - L1."""
    lo, hi = scored_bounds(terms, count_rule)
    return 2 * lo, max(2 * hi, hi)


def think_bounds(terms: Sequence[str] = DEFAULT_TERMS, count_rule: str = "free") -> tuple[float, float]:
    """Range of ``R_k`` (Eq. 9): (0, 3) for GIoU - L1."""
    lo, hi = scored_bounds(terms, count_rule)
    return 0.0, hi - lo


def total_bounds(terms: Sequence[str] = DEFAULT_TERMS, lambda_k: float = DEFAULT_LAMBDA_K, count_rule: str = "free") -> tuple[float, float]:
    """Range of ``R`` (Eq. 10): (-3, 5) for GIoU - L1 and ``λk ≤ 1``.

    A parsed answer has ``R_f = 1`` and ``R_s ≥ 2·lo``, so ``R ≥ 1 + 2·lo``; a rejected one
    scores 0. At the top, ``R_s + λk R_k = (1 + λk) R_spa^p + (1 - λk) R_spa^t`` (Eq. 9
    active) is linear in ``R_spa^t``, so its maximum sits at ``R_spa^t = hi`` or ``lo``.
    """
    lo, hi = scored_bounds(terms, count_rule)
    lam = check_lambda(lambda_k)
    return min(0.0, 1 + 2 * lo), 3 + max(2 * hi, (1 + lam) * hi + (1 - lam) * lo)


def _frame_scores(pred: np.ndarray, gt: np.ndarray, terms: Terms) -> np.ndarray:
    """The summand of Eq. 7, ``GIoU(b, b_gt) - ||b - b_gt||_1``, per frame; (F, 4) x2 -> (F,).

    Boxes are in frame units and clipped, so ``box_l1`` with a unit frame is the normalised
    L1 of the module docstring. ``terms`` keeps either term alone (Table 7), or is ``("iou",)``:
    the metric's IoU, ``("giou", "iou")``: IoU plus GIoU, or ``("centre",)``: 1 where the box's centre
    lies in the ground-truth box (none is the paper; module docstring).
    """
    score = np.zeros(len(pred))
    if "centre" in terms:
        score += centre_inside(pred, gt)
    if "iou" in terms:
        score += box_iou(pred, gt)
    if "giou" in terms:
        score += box_giou(pred, gt)
    if "l1" in terms:
        score -= box_l1(pred, gt)
    return score


def _spatial_many(
    box_lists: Sequence[Mapping[int, Sequence[float]]],
    spans: Sequence[tuple[int, int]],
    gts: Sequence[GroundTruth],
    terms: Terms,
    count_rule: str = "free",
) -> tuple[np.ndarray, np.ndarray]:
    """``R_spa`` (Eq. 6-7) for many box lists in one vectorised pass.

    Returns ``(r_spa, empty)``, both (N,): ``r_spa`` is 0 where the intersection is empty or
    holds no ground-truth box, and ``empty`` marks an empty intersection (Eq. 6). With
    ``count_rule="extra"`` each box outside the list's span joins the mean at the floor; with
    ``"span"`` so does each frame of the span without a box that Eq. 7 does not score already;
    with ``"union"`` each frame of the spans' union outside the intersection, every frame's
    score rescaled to ``[0, 1]`` so that the floor is 0 (module docstring).
    """
    n = len(box_lists)
    lo_frame, hi_frame = frame_bounds(terms)
    union = count_rule == "union"
    floor = 0.0 if union else lo_frame  # what a missing box or an added frame scores
    empty = np.zeros(n, dtype=bool)
    extra = np.zeros(n)  # (N,) frames added at the floor: boxes outside the span (+ unscored gaps, "span"; + the union, "union")
    owner: list[int] = []  # (F,) which list each scored frame belongs to
    pred_px: list[Sequence[float]] = []  # (F, 4) predicted boxes in pixels, zeros where missing
    scale: list[tuple[float, float, float, float]] = []  # (F, 4) W, H, W, H of that frame
    present: list[bool] = []  # (F,) whether the answer has a box there
    gt_parts: list[np.ndarray] = []  # pieces of the (F, 4) ground truth
    for i, (boxes, span, gt) in enumerate(zip(box_lists, spans, gts)):
        inter = span_intersection(span, gt.span)
        if inter is None:
            empty[i] = True
            continue
        lo, hi = bisect.bisect_left(gt.frames, inter[0]), bisect.bisect_right(gt.frames, inter[1])
        w, h = gt.size
        missing_scored = 0  # frames Eq. 7 scores where the list has no box (floored below)
        for f in gt.frames[lo:hi]:
            box = boxes.get(f)
            missing_scored += box is None
            present.append(box is not None)
            pred_px.append(box if box is not None else (0.0, 0.0, 0.0, 0.0))
            scale.append((w, h, w, h))
        owner.extend([i] * (hi - lo))
        gt_parts.append(gt.boxes[lo:hi])
        if count_rule != "free" and hi > lo:
            inside = sum(1 for k in boxes if span[0] <= k <= span[1])
            extra[i] = len(boxes) - inside
            if count_rule == "span":  # frames of the span without a box that Eq. 7 does not already floor
                extra[i] += (span[1] - span[0] + 1 - inside) - missing_scored
            elif count_rule == "union":  # vIoU's denominator: gt boxes outside the intersection + span frames outside the gt span
                extra[i] += (len(gt.frames) - (hi - lo)) + (span[1] - span[0]) - (inter[1] - inter[0])
    r_spa = np.zeros(n)
    if owner:
        pred = np.clip(np.asarray(pred_px, dtype=np.float64) / np.asarray(scale), 0.0, 1.0)
        per_frame = np.where(present, _frame_scores(pred, np.concatenate(gt_parts), terms), lo_frame)  # (F,)
        if union:  # vIoU's shape: [0, 1] per frame, so no parsed answer scores below a rejected one (0)
            per_frame = (per_frame - lo_frame) / (hi_frame - lo_frame)
        sums = np.bincount(owner, weights=per_frame, minlength=n) + floor * extra
        counts = np.bincount(owner, minlength=n) + extra
        r_spa = np.divide(sums, counts, out=np.zeros(n), where=counts > 0)
    return r_spa, empty


@dataclass(frozen=True, eq=False)
class SpatialParts:
    """``R_spa`` of each box list of a batch of answers, all (N,) arrays.

    ``think`` is 0 where the format has no think list (``has_think`` False); both are 0 for
    a rejected answer (``ok`` False) and on an empty intersection (``empty`` True).
    """

    ok: np.ndarray
    think: np.ndarray
    pred: np.ndarray
    has_think: np.ndarray
    empty: np.ndarray


def spatial_parts(
    parsed: Sequence[ParsedAnswer], gts: Sequence[GroundTruth], terms: Terms = DEFAULT_TERMS, count_rule: str = "free"
) -> SpatialParts:
    """Eq. 7 for the think and the pred list of every parsed answer, in one pass."""
    terms, count_rule = _check_terms(terms), _check_count_rule(count_rule)
    n = len(parsed)
    ok = np.array([p.ok for p in parsed], dtype=bool)
    has_think = np.array([p.ok and p.think is not None for p in parsed], dtype=bool)
    lists, spans, list_gts, slots = [], [], [], []  # slots: (row, 0 = think | 1 = pred)
    for i, (p, gt) in enumerate(zip(parsed, gts)):
        if not p.ok:
            continue
        for j, boxes in ((0, p.think), (1, p.pred)):
            if boxes is not None:
                lists.append(boxes)
                spans.append(p.span)
                list_gts.append(gt)
                slots.append((i, j))
    r, empty = _spatial_many(lists, spans, list_gts, terms, count_rule)
    table = np.zeros((n, 2))  # (N, 2): R_spa of think, pred
    empty_rows = np.zeros(n, dtype=bool)
    for (i, j), value, e in zip(slots, r, empty):
        table[i, j] = value
        empty_rows[i] |= e
    return SpatialParts(ok, table[:, 0], table[:, 1], has_think, empty_rows)


def spatial_values(parts: SpatialParts, terms: Terms = DEFAULT_TERMS, empty_overlap: str = "zero") -> np.ndarray:
    """Eq. 8: ``R_s = R_spa^t + R_spa^p`` (``R_spa^p`` alone without think), (N,).

    On an empty intersection it is 0 (``"zero"``, the paper) or the per-frame floor once per
    box list (``"floor"``); 0 for a rejected answer.
    """
    r_s = parts.pred + np.where(parts.has_think, parts.think, 0.0)
    if _check_empty_overlap(empty_overlap) == "floor":
        r_s = np.where(parts.empty, frame_bounds(terms)[0] * (1 + parts.has_think), r_s)
    return np.where(parts.ok, r_s, 0.0)


def think_values(parts: SpatialParts) -> np.ndarray:
    """Eq. 9: ``R_k = max(R_spa^p - R_spa^t, 0)``, (N,); 0 without think or overlap."""
    active = parts.ok & parts.has_think & ~parts.empty
    return np.where(active, np.maximum(parts.pred - parts.think, 0.0), 0.0)


def format_value(parsed: ParsedAnswer) -> float:
    """Eq. 3: 1 if the answer parses in its format, else 0."""
    return 1.0 if parsed.ok else 0.0


def consistency_value(parsed: ParsedAnswer) -> float:
    """Eq. 4: 1 if every box list covers exactly the frames ``ts..te``, else 0."""
    return 1.0 if parsed.consistent else 0.0


def temporal_value(parsed: ParsedAnswer, gt_span: tuple[int, int]) -> float:
    """Eq. 5: ``IoU(T^p, T^gt)`` of inclusive integer spans; 0 for a rejected answer."""
    return temporal_iou(parsed.span, gt_span) if parsed.ok and parsed.span is not None else 0.0


def total_values(
    parsed: Sequence[ParsedAnswer], gts: Sequence[GroundTruth], terms: Terms, empty_overlap: str, lambda_k: float,
    count_rule: str = "free",
) -> dict[str, np.ndarray]:
    """Every component and Eq. 10, ``R = R_f + R_c + R_t + R_s + λk R_k``, as (N,) arrays."""
    parts = spatial_parts(parsed, gts, terms, count_rule)
    out = {
        "format": np.array([format_value(p) for p in parsed]),
        "consistency": np.array([consistency_value(p) for p in parsed]),
        "temporal": np.array([temporal_value(p, gt.span) for p, gt in zip(parsed, gts)]),
        "spatial": spatial_values(parts, terms, empty_overlap),
        "think": think_values(parts),
    }
    out["total"] = out["format"] + out["consistency"] + out["temporal"] + out["spatial"] + lambda_k * out["think"]
    out["spa_think"], out["spa_pred"] = parts.think, parts.pred
    return out


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """``R_f`` (Eq. 3) ∈ {0, 1}: 1 iff the answer parses in its ``answer_format``."""
    return [format_value(p) for p in parse_completions(completions, kwargs)]


def consistency_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """``R_c`` (Eq. 4) ∈ {0, 1}: 1 iff it parses and every box list covers ``ts..te``."""
    return [consistency_value(p) for p in parse_completions(completions, kwargs)]


def temporal_reward(completions: Sequence[Any], **kwargs: Any) -> list[float]:
    """``R_t`` (Eq. 5) ∈ [0, 1]: temporal IoU with ``gt_span``; 0 if the answer is rejected."""
    parsed = parse_completions(completions, kwargs)
    spans = [ground_truth_span(s, f"row {i}") for i, s in enumerate(dataset_column(kwargs, "gt_span", len(parsed)))]
    return [temporal_value(p, s) for p, s in zip(parsed, spans)]


@dataclass(frozen=True)
class SpatialReward:
    """``R_s`` (Eq. 6-8) with a choice of terms and empty-overlap rule; see ``spatial_bounds``."""

    terms: Terms = DEFAULT_TERMS
    empty_overlap: str = "zero"
    count_rule: str = "free"

    @property
    def __name__(self) -> str:
        suffix = "" if self.terms == DEFAULT_TERMS else "_" + "_".join(self.terms)
        suffix += "_overlap_floor" if self.empty_overlap == "floor" else ""
        return "spatial_reward" + suffix + _COUNT_SUFFIX[self.count_rule]

    def __post_init__(self) -> None:
        _check_rule_pair(self.empty_overlap, self.count_rule)

    @property
    def bounds(self) -> tuple[float, float]:
        return spatial_bounds(self.terms, self.count_rule)

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        parsed = parse_completions(completions, kwargs)
        parts = spatial_parts(parsed, ground_truths(kwargs, len(parsed)), self.terms, self.count_rule)
        return spatial_values(parts, self.terms, self.empty_overlap).tolist()


@dataclass(frozen=True)
class ThinkReward:
    """``R_k`` (Eq. 9) with a choice of terms and count rule; see ``think_bounds``."""

    terms: Terms = DEFAULT_TERMS
    count_rule: str = "free"

    @property
    def __name__(self) -> str:
        name = "think_reward" + ("" if self.terms == DEFAULT_TERMS else "_" + "_".join(self.terms))
        return name + _COUNT_SUFFIX[self.count_rule]

    @property
    def bounds(self) -> tuple[float, float]:
        return think_bounds(self.terms, self.count_rule)

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        parsed = parse_completions(completions, kwargs)
        return think_values(spatial_parts(parsed, ground_truths(kwargs, len(parsed)), self.terms, self.count_rule)).tolist()


@dataclass(frozen=True)
class TotalReward:
    """``R`` (Eq. 10) as one reward function (weight 1); see ``total_bounds``."""

    lambda_k: float = DEFAULT_LAMBDA_K
    terms: Terms = DEFAULT_TERMS
    empty_overlap: str = "zero"
    count_rule: str = "free"

    @property
    def __name__(self) -> str:
        name = "total_reward" + ("" if self.terms == DEFAULT_TERMS else "_" + "_".join(self.terms))
        name += "_overlap_floor" if self.empty_overlap == "floor" else ""
        name += _COUNT_SUFFIX[self.count_rule]
        return name + ("" if self.lambda_k == DEFAULT_LAMBDA_K else f"_lambda{self.lambda_k:g}")

    def __post_init__(self) -> None:
        _check_rule_pair(self.empty_overlap, self.count_rule)

    @property
    def bounds(self) -> tuple[float, float]:
        return total_bounds(self.terms, self.lambda_k, self.count_rule)

    def __call__(self, completions: Sequence[Any], **kwargs: Any) -> list[float]:
        parsed = parse_completions(completions, kwargs)
        gts = ground_truths(kwargs, len(parsed))
        return total_values(parsed, gts, self.terms, self.empty_overlap, self.lambda_k, self.count_rule)["total"].tolist()


def make_spatial_reward(terms: Sequence[str] = DEFAULT_TERMS, empty_overlap: str = "zero", count_rule: str = "free") -> SpatialReward:
    """A spatial reward (Eq. 8) variant: ``terms`` ⊆ (giou, l1) (Table 7), or ("iou",) / ("giou", "iou") / ("centre",), ``empty_overlap``
    "zero" (paper) or "floor" (overlap penalty), ``count_rule`` "free", "extra", "span" or "union"
    (module docstring). Named e.g. ``spatial_reward_giou``, ``spatial_reward_extra_floor``."""
    return SpatialReward(_check_terms(terms), _check_empty_overlap(empty_overlap), _check_count_rule(count_rule))


def make_think_reward(terms: Sequence[str] = DEFAULT_TERMS, count_rule: str = "free") -> ThinkReward:
    """A think reward (Eq. 9) variant computed with ``terms`` and ``count_rule``. Named e.g. ``think_reward_l1``."""
    return ThinkReward(_check_terms(terms), _check_count_rule(count_rule))


def make_total_reward(
    lambda_k: float = DEFAULT_LAMBDA_K, terms: Sequence[str] = DEFAULT_TERMS, empty_overlap: str = "zero", count_rule: str = "free"
) -> TotalReward:
    """The total reward (Eq. 10) as a single function, for one log column and weight 1."""
    return TotalReward(check_lambda(lambda_k), _check_terms(terms), _check_empty_overlap(empty_overlap), _check_count_rule(count_rule))


spatial_reward = make_spatial_reward()
think_reward = make_think_reward()
total_reward = make_total_reward()

DEFAULT_REWARD_FUNCS: tuple[RewardFunc, ...] = (
    format_reward,
    consistency_reward,
    temporal_reward,
    spatial_reward,
    think_reward,
)

REWARDS: dict[str, RewardFunc] = {
    f.__name__: f
    for f in (
        *DEFAULT_REWARD_FUNCS,
        make_spatial_reward(("giou",)),
        make_spatial_reward(("l1",)),
        make_spatial_reward(empty_overlap="floor"),
        make_spatial_reward(count_rule="extra"),
        make_spatial_reward(count_rule="span"),
        make_spatial_reward(count_rule="union"),
        make_spatial_reward(("iou",), count_rule="union"),
        make_spatial_reward(("giou", "iou"), count_rule="union"),
        make_spatial_reward(("centre",)),
        make_think_reward(("giou",)),
        make_think_reward(("l1",)),
        make_think_reward(count_rule="extra"),
        make_think_reward(count_rule="span"),
        make_think_reward(count_rule="union"),
        make_think_reward(("iou",), count_rule="union"),
        make_think_reward(("giou", "iou"), count_rule="union"),
        make_think_reward(("centre",)),
        total_reward,
    )
}

# R_f, R_c, R_t are 0/1 or an IoU; the factory-made rewards know their own range
REWARD_BOUNDS: dict[str, tuple[float, float]] = {
    name: f.bounds if isinstance(f, (SpatialReward, ThinkReward, TotalReward)) else (0.0, 1.0)
    for name, f in REWARDS.items()
}

def score_completion(
    text: Any,
    gt_span: Sequence[int],
    gt_tube: Any,
    frame_size: Sequence[float],
    answer_format: str = "paper",
    lambda_k: float = DEFAULT_LAMBDA_K,
    *,
    terms: Sequence[str] = DEFAULT_TERMS,
    empty_overlap: str = "zero",
    count_rule: str = "free",
) -> dict[str, Any]:
    """Every reward component of one completion, for notebooks and analysis.

    Returns floats ``format``, ``consistency``, ``temporal``, ``spatial``, ``think``,
    ``total`` (Eq. 3-10), ``spa_think`` and ``spa_pred`` (Eq. 7 of each list), and
    ``error`` (the parser's code, None when it parsed). The same code as the reward
    functions computes them.
    """
    terms = _check_terms(terms)
    parsed = parse_answer(completion_text(text), get_format(answer_format))
    gt = ground_truth(gt_span, gt_tube, frame_size)
    values = total_values([parsed], [gt], terms, _check_empty_overlap(empty_overlap), check_lambda(lambda_k),
                          _check_count_rule(count_rule))
    out: dict[str, Any] = {k: float(v[0]) for k, v in values.items()}
    out["error"] = parsed.error
    return out
