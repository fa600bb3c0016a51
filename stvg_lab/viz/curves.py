"""Training curves and dataset distributions as matplotlib Figures (built without pyplot, nothing left open).

* :func:`log_series`, :func:`reward_keys`: read series out of a run's log records
  (``stvg_lab.train.logging.read_log``: one dict per logging step).
* :func:`plot_training_log`: one panel per logged key against the optimizer step: the SFT loss
  curve, GRPO's per-reward curves (``rewards/<name>/mean`` with a ±std band from
  ``rewards/<name>/std``), the zero-spread fraction, the KL.
* :func:`plot_dataset_statistics`: tube lengths, box area ratios and tag rates per split, from
  ``stvg_lab.notebook.sample_statistics``.

In a notebook, show a Figure as a cell's last expression after ``%matplotlib inline`` (which
registers the PNG formatter), or save it with ``fig.savefig``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

REWARD_PREFIX = "rewards/"
X_KEYS: tuple[str, ...] = ("step", "epoch", "elapsed")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def log_series(records: Sequence[Mapping[str, Any]], key: str, x: str = "step") -> tuple[np.ndarray, np.ndarray]:
    """``(xs, values)``, both ``(n,)`` float, over the records holding a number under ``key`` and ``x``.

    Records without ``key`` (another stage's columns, the end-of-training summary) are skipped;
    NaN and infinite values are kept (a diverged loss must show). ``([], [])`` when none has it.
    """
    xs, ys = [], []
    for r in records:
        xv, yv = _number(r.get(x)), _number(r.get(key))
        if xv is not None and yv is not None:
            xs.append(xv)
            ys.append(yv)
    return np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)


def reward_keys(records: Sequence[Mapping[str, Any]], stat: str = "mean") -> list[str]:
    """The ``rewards/<name>/<stat>`` keys of a GRPO log, in the order they first appear (TRL's reward order)."""
    keys: list[str] = []
    for r in records:
        for k in r:
            if k.startswith(REWARD_PREFIX) and k.endswith("/" + stat) and k.count("/") == 2 and k not in keys:
                keys.append(k)
    return keys


def _title(key: str) -> str:
    """``rewards/temporal_reward/mean`` -> ``temporal_reward (mean)``; other keys as they are."""
    parts = key.split("/")
    if len(parts) == 3 and parts[0] == "rewards":
        return f"{parts[1]} ({parts[2]})"
    return key


def plot_training_log(
    records: Sequence[Mapping[str, Any]],
    keys: Sequence[str],
    *,
    x: str = "step",
    ncols: int = 3,
    titles: Mapping[str, str] | None = None,
    band: bool = True,
    suptitle: str | None = None,
    skip_missing: bool = False,
) -> "Figure":
    """One panel per key of ``keys``: its value against ``x`` (optimizer step by default).

    With ``band``, a key ``<prefix>/mean`` whose ``<prefix>/std`` is logged too gets a shaded
    mean ± std band (for GRPO rewards: the spread over the batch's completions). A key that no
    record holds raises ValueError listing the numeric keys the log has, or, with
    ``skip_missing``, is left out (e.g. ``kl``, which TRL logs only when β > 0); ValueError
    if none is left. ``titles`` renames panels.
    """
    from matplotlib.figure import Figure

    if x not in X_KEYS:
        raise ValueError(f"x must be one of {X_KEYS}, got {x!r}")
    series = {k: log_series(records, k, x) for k in keys}
    missing = [k for k, (xs, _) in series.items() if xs.size == 0]
    if skip_missing:
        keys = [k for k in keys if k not in missing]
        missing = [] if keys else missing
    if not keys:
        raise ValueError(f"plot_training_log: no keys to plot (asked for {missing or 'none'})")
    if missing:
        numeric = sorted({k for r in records for k, v in r.items() if _number(v) is not None and k not in X_KEYS})
        raise ValueError(f"no log record holds {missing}; numeric keys in the log: {numeric}")
    ncols = max(1, min(int(ncols), len(keys)))
    nrows = math.ceil(len(keys) / ncols)
    fig = Figure(figsize=(3.6 * ncols, 2.6 * nrows + (0.4 if suptitle else 0.0)), dpi=100)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    names = dict(titles or {})
    for ax, key in zip(axes, keys):
        xs, ys = series[key]
        ax.plot(xs, ys, "o-" if xs.size < 30 else "-", markersize=3, color="tab:blue")
        if band and key.endswith("/mean"):
            sx, sd = log_series(records, key[: -len("mean")] + "std", x)
            if sx.size == xs.size and np.array_equal(sx, xs):
                ax.fill_between(xs, ys - sd, ys + sd, color="tab:blue", alpha=0.2, linewidth=0)
        ax.set_title(names.get(key, _title(key)), fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def plot_dataset_statistics(
    stats: "pd.DataFrame",
    *,
    by: str = "split",
    tags: Sequence[str] = ("small", "short", "occluded"),
    area_bins: Sequence[tuple[float, float]] | None = None,
    bins: int = 20,
) -> "Figure":
    """Three panels per dataset: tube length (s) and box area ratio histograms per ``by`` group, tag rates.

    ``stats`` is :func:`stvg_lab.notebook.sample_statistics`'s frame (columns ``tube_seconds``,
    ``area_ratio``, the ``tags``). Histograms are normalised per group (densities), so splits of
    different sizes compare. The inner edges of ``area_bins`` (e.g.
    ``stvg_lab.analysis.scale.AREA_BINS``) are drawn as dotted lines on the area panel: the
    object-scale bins of Fig. 4 (those inside the data's range). Tags a group
    does not carry (real data) are shown as 0 with the group's label saying "no tags".
    """
    from matplotlib.figure import Figure

    for column in ("tube_seconds", "area_ratio", by):
        if column not in stats.columns:
            raise ValueError(f"stats lacks column {column!r}; expected stvg_lab.notebook.sample_statistics output")
    groups = list(dict.fromkeys(stats[by]))
    fig = Figure(figsize=(12.0, 3.2), dpi=100)
    ax_len, ax_area, ax_tags = fig.subplots(1, 3)
    panels = (("tube_seconds", ax_len, "tube length (s)"), ("area_ratio", ax_area, "gt box area / frame area"))
    for column, ax, label in panels:
        values = stats[column].to_numpy(dtype=np.float64)
        edges = np.histogram_bin_edges(values[np.isfinite(values)], bins=bins)
        for g in groups:
            ax.hist(stats.loc[stats[by] == g, column].to_numpy(dtype=np.float64), bins=edges, density=True,
                    histtype="step", linewidth=1.5, label=f"{g} (n={int((stats[by] == g).sum())})")
        ax.set_xlabel(label, fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    lo, hi = ax_area.get_xlim()
    for _, edge in list(area_bins or ())[:-1]:
        if lo <= float(edge) <= hi:  # edges beyond the data would only stretch the axis
            ax_area.axvline(float(edge), color="grey", linestyle=":", linewidth=0.8)
    width = 0.8 / max(1, len(groups))
    positions = np.arange(len(tags))
    for i, g in enumerate(groups):
        sub = stats.loc[stats[by] == g]
        rates = []
        for tag in tags:
            known = sub[tag].dropna() if tag in sub.columns else sub.iloc[0:0]
            rates.append(100.0 * known.astype(bool).mean() if len(known) else 0.0)
        has_tags = any(tag in sub.columns and sub[tag].notna().any() for tag in tags)
        ax_tags.bar(positions + (i - (len(groups) - 1) / 2) * width, rates, width=width,
                    label=str(g) if has_tags else f"{g} (no tags)")
    ax_tags.set_xticks(positions)
    ax_tags.set_xticklabels(list(tags), fontsize=8)
    ax_tags.set_ylabel("% of samples", fontsize=8)
    ax_tags.tick_params(labelsize=7)
    ax_tags.legend(fontsize=7)
    ax_len.set_title("tube length", fontsize=9)
    ax_area.set_title("object scale", fontsize=9)
    ax_tags.set_title("difficulty tags (paper §B)", fontsize=9)
    fig.tight_layout()
    return fig
