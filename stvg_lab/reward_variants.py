"""Which reward functions and weights GRPO gets: Eq. 10's weights and the ablations of Tables 5-8.

:func:`reward_setup` returns ``(reward_funcs, reward_weights)`` for TRL's ``GRPOTrainer``, built from
the callables of :mod:`stvg_lab.rewards`; :data:`VARIANTS` names the ablations (the recipe's
``reward_variant``), and :func:`scaled_weights` the recipe's ``reward_scale`` (not the paper).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from stvg_lab.rewards import DEFAULT_LAMBDA_K, DEFAULT_REWARD_FUNCS, RewardFunc, check_lambda, make_spatial_reward, make_think_reward

# the five terms of Eq. 10, in the order of DEFAULT_REWARD_FUNCS and of reward_weights
REWARD_TERMS: tuple[str, ...] = ("format", "consistency", "temporal", "spatial", "think")

VARIANTS: tuple[str, ...] = ("full", "no_think_reward", "giou_only", "l1_only", "overlap_penalty", "no_think_bbox", "count_penalty",
                             "count_symmetric", "union_spatial", "viou_metric", "viou_giou", "iou_intersection", "centre_hit")


def reward_weights(lambda_k: float = DEFAULT_LAMBDA_K) -> list[float]:
    """TRL ``reward_weights`` for ``DEFAULT_REWARD_FUNCS``: ``[1, 1, 1, 1, λk]`` (Eq. 10)."""
    return [1.0, 1.0, 1.0, 1.0, check_lambda(lambda_k)]


def scaled_weights(weights: Sequence[float], scale: Mapping[str, float] | None) -> list[float]:
    """``weights`` with each term named in ``scale`` (keys of :data:`REWARD_TERMS`) multiplied by its factor.

    Not the paper: Eq. 10 weighs R_f, R_c, R_t and R_s alike. A factor lets an ablation ask how much one
    term's pull matters (bench/LEARNING.md round 9: a heavier format term against broken answers).
    Raises ValueError naming an unknown term or a negative or non-numeric factor.
    """
    out = list(weights)
    for term, factor in (scale or {}).items():
        if term not in REWARD_TERMS:
            raise ValueError(f"reward scale: unknown term {term!r}; choose from {list(REWARD_TERMS)}")
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor >= 0:
            raise ValueError(f"reward scale: the factor of {term!r} must be a number >= 0, got {factor!r}")
        out[REWARD_TERMS.index(term)] *= float(factor)
    return out


def reward_setup(
    variant: str = "full", lambda_k: float = DEFAULT_LAMBDA_K, scale: Mapping[str, float] | None = None
) -> tuple[list[RewardFunc], list[float]]:
    """``(reward_funcs, reward_weights)`` for GRPOTrainer, one ablation of Tables 5-8.

    * ``full``: the five rewards, weights ``[1, 1, 1, 1, λk]``.
    * ``no_think_reward`` (Table 6): the same five functions, think weight 0. ``R_k`` is
      still computed and logged (it is cheap) so every variant logs the same columns.
    * ``giou_only`` / ``l1_only`` (Table 7): spatial and think rewards with one term.
    * ``overlap_penalty``: the spatial reward scores the floor on an empty intersection.
    * ``count_penalty``: spatial and think rewards score each box outside the claimed span at
      the floor (``count_rule="extra"``), as a missing box inside it already is.
    * ``count_symmetric``: also each frame of the span without a box (``count_rule="span"``).
    * ``union_spatial``: Eq. 7 in vIoU's shape, per-frame scores in ``[0, 1]`` averaged over the
      spans' union (``count_rule="union"``). Not the paper (bench/LEARNING.md round 9).
    * ``viou_metric``: ``R_spa`` is the test metric, vIoU, of each box list (per-frame IoU over
      the union: ``terms=("iou",)``, ``count_rule="union"``). Not the paper (round 11).
    * ``viou_giou``: as ``viou_metric`` with GIoU added to each frame's IoU, so a box that misses
      still scores more the nearer it is (``terms=("giou", "iou")``). Not the paper (round 13).
    * ``iou_intersection``: per-frame IoU averaged over the spans' intersection, as Eq. 7 averages,
      each box outside the claimed span adding a 0 (``terms=("iou",)``, ``count_rule="extra"``): the box
      term of the metric without its span part, which ``temporal`` already pays, so trimming a span
      or a list cannot raise it. Not the paper (round 15).
    * ``centre_hit``: a frame scores 1 when its box's centre lies in the ground-truth box, else 0,
      averaged over the intersection as Eq. 7 averages (``terms=("centre",)``): the object a box
      lies on, not its geometry, which the samples of a group move. Not the paper (round 25: it loses box quality).
    * ``no_think_bbox`` (Table 5): the same as ``full``. The dataset's ``answer_format``
      column ("no_think") is what drops ``<think_bbox>``: then ``R_k = 0`` and
      ``R_s = R_spa^p``.

    ``λk`` (Table 8) is ``lambda_k``. ``scale`` multiplies named terms' weights
    (:func:`scaled_weights`; not the paper). Raises ValueError for an unknown variant.
    """
    lam = check_lambda(lambda_k)
    funcs = list(DEFAULT_REWARD_FUNCS)
    weights = reward_weights(lam)
    if variant in ("full", "no_think_bbox"):
        pass
    elif variant == "no_think_reward":
        weights[4] = 0.0
    elif variant in ("giou_only", "l1_only"):
        terms = ("giou",) if variant == "giou_only" else ("l1",)
        funcs[3], funcs[4] = make_spatial_reward(terms), make_think_reward(terms)
    elif variant == "overlap_penalty":
        funcs[3] = make_spatial_reward(empty_overlap="floor")
    elif variant == "count_penalty":
        funcs[3], funcs[4] = make_spatial_reward(count_rule="extra"), make_think_reward(count_rule="extra")
    elif variant == "count_symmetric":
        funcs[3], funcs[4] = make_spatial_reward(count_rule="span"), make_think_reward(count_rule="span")
    elif variant == "union_spatial":
        funcs[3], funcs[4] = make_spatial_reward(count_rule="union"), make_think_reward(count_rule="union")
    elif variant == "viou_metric":
        funcs[3], funcs[4] = make_spatial_reward(("iou",), "zero", "union"), make_think_reward(("iou",), "union")
    elif variant == "viou_giou":
        funcs[3], funcs[4] = make_spatial_reward(("giou", "iou"), "zero", "union"), make_think_reward(("giou", "iou"), "union")
    elif variant == "iou_intersection":
        funcs[3], funcs[4] = make_spatial_reward(("iou",), "zero", "extra"), make_think_reward(("iou",), "extra")
    elif variant == "centre_hit":
        funcs[3], funcs[4] = make_spatial_reward(("centre",)), make_think_reward(("centre",))
    else:
        raise ValueError(f"unknown reward variant {variant!r}; choose one of {VARIANTS}")
    return funcs, scaled_weights(weights, scale)
