"""Is one model better than another on the same clips? A paired bootstrap over clips and seeds.

    stvg-lab compare --a runs/x/seed0/eval runs/x/seed1/eval --b runs/y/seed0/eval runs/y/seed1/eval

On 100 test clips and two or three training seeds, two arms a few m_vIoU points apart are often
inside the noise (bench/LEARNING.md round 20: an interval is about ±3 m_vIoU wide on 100 clips, and a
single checkpoint of a constant-lr run wanders by as much). Both noises are resampled here, since
the tables average over both:

* clips: every run of both arms was scored on the same clips, so one draw of clip indices is shared
  by the two arms (paired), which removes the clips' own difficulty from the difference;
* seeds: each arm's runs (one per training seed) are drawn with replacement, independently per arm.

With k seeds the seed draw spreads the mean by sqrt((k-1)/k) of the usual standard error: with 2–3
seeds the interval is too narrow on that side, and a single seed per arm tests only the clips.
Seeds count only if they are independent: round 20's two SFT "seeds" that shared their data orders
agreed on a +3 gain that independent orders did not repeat.
The per-clip scores are ``evaluate_model``'s ``per_sample.jsonl`` rows; a clip without an answer
is there with 0, as in ``metrics.json``, so each arm's mean equals its reported metric. Besides the
metrics (in points), the reward terms of the answers (:data:`REWARD_METRICS`, in reward units) can be
compared: whether GRPO raised its reward on new clips, and in which term.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stvg_lab.analysis.scale import read_per_sample
from stvg_lab.analysis.tags import tag_order

# table metric -> (per-sample quantity, threshold); vIoU@R counts vIoU > R, strict as in stvg_lab.metrics
METRICS: dict[str, tuple[str, float | None]] = {
    "m_tIoU": ("tIoU", None),
    "m_vIoU": ("vIoU", None),
    "vIoU@0.3": ("vIoU", 0.3),
    "vIoU@0.5": ("vIoU", 0.5),
}
TUBES = ("pred", "think")
# reward metric -> its key in a per-sample row's "reward" (stvg_lab.evaluate.answer_rewards): of the whole answer, no tube
REWARD_METRICS: dict[str, str] = {
    "R_total": "total",  # Eq. 10
    "R_format": "format",
    "R_consistency": "consistency",
    "R_temporal": "temporal",
    "R_spatial": "spatial",  # Eq. 8, think + pred
    "R_think": "think",
    "R_spa_pred": "spa_pred",  # Eq. 7 of the pred list
    "R_spa_think": "spa_think",
}
COMPARABLE = (*METRICS, *REWARD_METRICS)
RESCORE_HINT = ("it was scored before evaluations scored rewards (session 29): run stvg-lab evaluate on its folder again "
                "with the same model (its answers are kept and scored, nothing is generated)")
"""The remedy for an evaluation without ``reward``, shared by every reader that needs one."""


def is_reward(metric: str) -> bool:
    """Whether ``metric`` is a reward term (reward units, one value per answer) rather than a metric (a fraction, per tube)."""
    return metric in REWARD_METRICS


def _clip_value(row: Mapping[str, Any], metric: str, tube: str) -> tuple[str, Any]:
    """(what the row was asked for, its raw value or None) for one per-sample row."""
    if is_reward(metric):
        key = REWARD_METRICS[metric]
        return f"reward {key!r}", (row.get("reward") or {}).get(key)
    key = f"{METRICS[metric][0]}_{tube}"
    return repr(key), row.get(key)


def clip_scores(rows: Sequence[Mapping[str, Any]], metric: str, tube: str = "pred", source: str = "rows") -> dict[Hashable, float]:
    """Per clip id, the clip's share of ``metric`` (its tIoU or vIoU, or 0/1 for vIoU@R) for ``tube``,
    or the answer's reward term for a :data:`REWARD_METRICS` name (``tube`` then plays no part).

    ``rows``: ``per_sample.jsonl`` rows; ``source`` names them in errors (the folder they came from).
    """
    if metric not in COMPARABLE:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(COMPARABLE)}")
    if tube not in TUBES:
        raise ValueError(f"unknown tube {tube!r}; choose from {', '.join(TUBES)}")
    threshold = None if is_reward(metric) else METRICS[metric][1]
    out: dict[Hashable, float] = {}
    for i, row in enumerate(rows, 1):
        sid = row.get("id")
        what, value = _clip_value(row, metric, tube)
        if sid is None:
            raise ValueError(f"{source}: per-sample row {i} has no 'id'")
        if sid in out:
            raise ValueError(f"{source}: clip {sid!r} appears twice (row {i}); one evaluation per folder")
        if value is None:
            hint = ""
            if is_reward(metric):
                hint = f"; {RESCORE_HINT}"
            elif tube == "think":
                hint = "; the model writes no think tube (a no-think format), compare --tube pred"
            raise ValueError(f"{source}: clip {sid!r} (row {i}) has no {what}{hint}")
        out[sid] = float(value > threshold) if threshold is not None else float(value)
    return out


@dataclass(frozen=True)
class PairedDifference:
    """Arm a minus arm b on one metric, in the metric's units (fractions: 0.25 is 25 points; rewards in reward units).

    ``lo``/``hi``: the central ``level`` bootstrap interval of the difference; ``share_not_better``:
    the share of bootstrap draws in which a does not beat b (a one-sided bootstrap p-value);
    ``wins``/``losses``: clips on which a's seed-mean score is above/below b's.
    """

    metric: str
    tube: str
    n_clips: int
    seeds_a: int
    seeds_b: int
    mean_a: float
    mean_b: float
    diff: float
    lo: float
    hi: float
    level: float
    share_not_better: float
    wins: int
    losses: int
    n_boot: int


def _matrix(runs: Sequence[Mapping[Hashable, float]], ids: list[Hashable], arm: str, names: Sequence[str]) -> np.ndarray:
    """``(n_runs, n_clips)`` scores in the order of ``ids``; every run must cover exactly those clips."""
    want = set(ids)
    for scores, name in zip(runs, names):
        missing, extra = sorted(want - scores.keys(), key=str), sorted(scores.keys() - want, key=str)
        if missing or extra:
            what = "; ".join(s for s in (f"lacks {missing[:3]}" if missing else "", f"has extra {extra[:3]}" if extra else "") if s)
            raise ValueError(f"arm {arm}, {name}: not the clips of the first run of arm a ({what}); "
                             "score every run on the same split (and the same --max-samples)")
    return np.array([[scores[i] for i in ids] for scores in runs], dtype=np.float64)


def paired_difference(
    a: Sequence[Mapping[Hashable, float]],
    b: Sequence[Mapping[Hashable, float]],
    metric: str = "m_vIoU",
    tube: str = "pred",
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
    names_a: Sequence[str] | None = None,
    names_b: Sequence[str] | None = None,
) -> PairedDifference:
    """Mean of arm ``a`` minus arm ``b`` with its paired (clips) and per-arm (seeds) bootstrap interval.

    ``a``, ``b``: one ``{clip id: score}`` per run (training seed) of each arm (:func:`clip_scores`).
    One draw: ``n`` clip indices with replacement, shared by both arms, and each arm's runs with
    replacement; its statistic is the mean over the drawn runs and clips of a, minus that of b.
    """
    if not a or not b:
        raise ValueError("each arm needs at least one run")
    if n_boot < 1 or not 0 < level < 1:
        raise ValueError(f"n_boot must be >= 1 and level in (0, 1), got {n_boot} and {level}")
    names_a = list(names_a or [f"run {k}" for k in range(len(a))])
    names_b = list(names_b or [f"run {k}" for k in range(len(b))])
    ids = sorted(a[0], key=str)
    if not ids:
        raise ValueError(f"arm a, {names_a[0]}: no clips")
    xa, xb = _matrix(a, ids, "a", names_a), _matrix(b, ids, "b", names_b)  # (k_a, n), (k_b, n)
    rng = np.random.default_rng(seed)
    n = len(ids)
    stats = np.empty(n_boot)
    for j in range(n_boot):  # one draw at a time: memory stays O(k n) for any n_boot
        clips = rng.integers(0, n, size=n)  # (n,) shared by both arms: the pairing
        ra = xa[rng.integers(0, len(xa), size=len(xa))].mean(axis=0)  # (n,) mean over the drawn runs
        rb = xb[rng.integers(0, len(xb), size=len(xb))].mean(axis=0)
        stats[j] = (ra - rb)[clips].mean()
    tail = (1 - level) / 2
    per_clip = xa.mean(axis=0) - xb.mean(axis=0)  # (n,)
    return PairedDifference(
        metric=metric, tube=tube, n_clips=n, seeds_a=len(xa), seeds_b=len(xb),
        mean_a=float(xa.mean()), mean_b=float(xb.mean()), diff=float(per_clip.mean()),
        lo=float(np.quantile(stats, tail)), hi=float(np.quantile(stats, 1 - tail)), level=level,
        share_not_better=float((stats <= 0).mean()),
        wins=int((per_clip > 0).sum()), losses=int((per_clip < 0).sum()), n_boot=n_boot,
    )


def compare_evaluations(
    a_dirs: Sequence[str | Path],
    b_dirs: Sequence[str | Path],
    metrics: Sequence[str] = tuple(METRICS),
    tube: str = "pred",
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
) -> list[PairedDifference]:
    """:func:`paired_difference` of two sets of evaluation folders (``per_sample.jsonl``), per metric."""
    rows_a = [read_per_sample(d) for d in a_dirs]
    rows_b = [read_per_sample(d) for d in b_dirs]
    return _compare_rows(rows_a, rows_b, a_dirs, b_dirs, None, metrics, tube, n_boot, level, seed)


def _compare_rows(
    rows_a: Sequence[Sequence[Mapping[str, Any]]],
    rows_b: Sequence[Sequence[Mapping[str, Any]]],
    a_dirs: Sequence[str | Path],
    b_dirs: Sequence[str | Path],
    clips: set[Hashable] | None,
    metrics: Sequence[str],
    tube: str,
    n_boot: int,
    level: float,
    seed: int,
) -> list[PairedDifference]:
    """Per metric, :func:`paired_difference` of the runs' rows, on ``clips`` only when given."""
    names_a, names_b = [str(d) for d in a_dirs], [str(d) for d in b_dirs]

    def scores(rows: Sequence[Mapping[str, Any]], metric: str, name: str) -> dict[Hashable, float]:
        per_clip = clip_scores(rows, metric, tube, name)
        return per_clip if clips is None else {i: x for i, x in per_clip.items() if i in clips}

    return [paired_difference([scores(r, m, d) for r, d in zip(rows_a, names_a)], [scores(r, m, d) for r, d in zip(rows_b, names_b)],
                              m, "answer" if is_reward(m) else tube, n_boot, level, seed, names_a, names_b) for m in metrics]


def clip_tags(runs: Sequence[Sequence[Mapping[str, Any]]], tag: str, sources: Sequence[str]) -> dict[Hashable, Any]:
    """Per clip id, the value of ``tag`` (``row["tags"][tag]``, None without it) over all runs' rows.

    A tag is a property of the clip, so every run must give a clip the same value; a run that gives
    another is an error naming the run and the clip (folders scored on other data).
    """
    out: dict[Hashable, Any] = {}
    for rows, source in zip(runs, sources):
        for i, row in enumerate(rows, 1):
            sid, value = row.get("id"), (row.get("tags") or {}).get(tag)
            if sid in out and out[sid] != value:
                raise ValueError(f"{source}: clip {sid!r} (row {i}) has {tag}={value!r} where another run has "
                                 f"{out[sid]!r}; compare folders scored on the same data")
            out[sid] = value
    return out


def compare_by_tag(
    a_dirs: Sequence[str | Path],
    b_dirs: Sequence[str | Path],
    tag: str,
    metrics: Sequence[str] = tuple(METRICS),
    tube: str = "pred",
    n_boot: int = 10_000,
    level: float = 0.95,
    seed: int = 0,
    max_groups: int = 12,
) -> dict[str, list[PairedDifference]]:
    """:func:`compare_evaluations` on each group of clips that share a value of ``tag`` (e.g. ``n_distractors``).

    Where a difference comes from: an arm that gains on clips with distractors and loses on clips
    without them can tie overall. Each group is bootstrapped on its own clips (paired as before), so its
    interval is wider than the overall one by about sqrt(n / n_group). Keys read ``"<tag> = <value>
    (<n> clips)"``, values in sorted order, None (clips without the tag) last, for :func:`difference_table`.
    A tag with more than ``max_groups`` values (a continuous one, such as ``occlusion``) is refused.
    """
    rows_a = [read_per_sample(d) for d in a_dirs]
    rows_b = [read_per_sample(d) for d in b_dirs]
    values = clip_tags([*rows_a, *rows_b], tag, [str(d) for d in (*a_dirs, *b_dirs)])
    groups: dict[Any, set[Hashable]] = {}
    for sid, value in values.items():
        groups.setdefault(value, set()).add(sid)
    if set(groups) == {None}:
        raise ValueError(f"no clip of {a_dirs[0]} has the tag {tag!r}; its rows' tags are "
                         f"{sorted((rows_a[0][0].get('tags') or {}))}")
    if len(groups) > max_groups:
        raise ValueError(f"tag {tag!r} has {len(groups)} values over {len(values)} clips (more than {max_groups}); "
                         "split by a tag with few values (n_distractors, event, small, ...)")
    return {f"{tag} = {value} ({len(groups[value])} clips)":
            _compare_rows(rows_a, rows_b, a_dirs, b_dirs, groups[value], metrics, tube, n_boot, level, seed) for value in tag_order(groups)}


def difference_table(named: Mapping[str, Sequence[PairedDifference]]) -> str:
    """A markdown table of :class:`PairedDifference` rows under their comparison's name: metrics in points (x100), rewards in reward units."""
    rows = [r for group in named.values() for r in group]
    if not rows:
        return ""
    lines = [f"| comparison | metric | a | b | a - b | {rows[0].level:.0%} interval | draws with a <= b | clips a > b / a < b |",
             "|---|---|---:|---:|---:|---|---:|---:|"]
    for name, group in named.items():
        for r in group:
            # rewards keep their units (R_total spans (-3, 5)); metrics are fractions shown in points
            scale, digits, label = (1.0, 3, r.metric) if is_reward(r.metric) else (100.0, 1, f"{r.metric} ({r.tube})")
            a, b = (f"{scale * x:.{digits}f}" for x in (r.mean_a, r.mean_b))
            d, lo, hi = (f"{scale * x:+.{digits}f}" for x in (r.diff, r.lo, r.hi))  # signed: differences
            lines.append(f"| {name} | {label} | {a} | {b} | {d} | [{lo}, {hi}] | {r.share_not_better:.3f} | {r.wins} / {r.losses} |")
    runs = sorted({(r.seeds_a, r.seeds_b) for r in rows})
    clips = sorted({r.n_clips for r in rows})
    n = str(clips[0]) if len(clips) == 1 else "/".join(map(str, clips))
    return "\n".join(lines) + (f"\n\n{n} clips, runs per arm (a, b): {', '.join(map(str, runs))}; "
                               f"{rows[0].n_boot} bootstrap draws (clips paired, runs drawn per arm).\n")


def variant_differences(
    grid: Any, reference: str = "full", metrics: Sequence[str] = ("m_tIoU", "m_vIoU", "vIoU@0.3"), tube: str = "pred", **kwargs: Any
) -> dict[str, list[PairedDifference]]:
    """``reference`` minus each other variant of an ablation grid (``stvg_lab.analysis.grid.GridResults``).

    Every finished run (metrics and ``per_sample.jsonl``) of a variant is one of its seeds; the
    grid scores all runs on the same clips. ``kwargs`` go to :func:`compare_evaluations`.
    Keys read ``"<reference> - <variant>"``, for :func:`difference_table`.
    """
    evals: dict[str, list[Path]] = {}
    for r in grid.runs:
        if r.metrics and (r.eval_dir / "per_sample.jsonl").is_file():
            evals.setdefault(r.variant, []).append(r.eval_dir)
    if reference not in evals:
        raise ValueError(f"{grid.out_dir}: no finished run of the reference variant {reference!r}")
    return {f"{reference} - {v}": compare_evaluations(evals[reference], dirs, metrics, tube, **kwargs)
            for v, dirs in evals.items() if v != reference}
