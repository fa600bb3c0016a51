"""Grounding across object scales (paper §4.4, Fig. 4): vIoU of the think and pred tubes per box-area bin.

Each evaluated sample is binned by its ground-truth box area ratio (mean over the tube's frames of
box area / frame area; ``gt_area_ratio`` in :mod:`stvg_lab.evaluate`'s ``per_sample.jsonl``), and
per bin we average the vIoU of the ``<think_bbox>`` tube and of the ``<pred_bbox>`` tube.

Bins. Fig. 4's bin edges are in an image we do not have; the text names one bin, "0.04–0.09"
("a maximum improvement of +11% in the 0.04–0.09 area ratio bin"). 0.04 and 0.09 are 0.2² and
0.3², so we take the squares of 0.1 steps of the relative box *side*: 0–0.01, 0.01–0.04,
0.04–0.09, 0.09–0.16, 0.16–0.25, and 0.25–1 for everything larger (:data:`AREA_BINS`). This is
our reconstruction, not the paper's stated binning. Bins are half-open ``[lo, hi)``; the last is
closed so a full-frame box (ratio 1) counts.

Δ is ``pred_vIoU − think_vIoU`` of the bin means (what the green bars of Fig. 4 show), in the
same units. Samples without a think tube (a no-think format) count in ``n`` and ``pred_vIoU``
only; ``n_think`` says how many had one. An empty bin has ``n = 0`` and NaN means, never an error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

AREA_BINS: tuple[tuple[float, float], ...] = (
    (0.0, 0.01), (0.01, 0.04), (0.04, 0.09), (0.09, 0.16), (0.16, 0.25), (0.25, 1.0),
)
"""Box-area-ratio bins: squares of 0.1 steps of the relative side (module docstring)."""
AREA_KEY, THINK_KEY, PRED_KEY = "gt_area_ratio", "vIoU_think", "vIoU_pred"
COLUMNS: tuple[str, ...] = ("bin", "lo", "hi", "n", "n_think", "think_vIoU", "pred_vIoU", "delta")


def bin_label(lo: float, hi: float) -> str:
    """``"0.04–0.09"`` (en dash, as the paper writes it)."""
    return f"{lo:g}–{hi:g}"


def _check_bins(bins: Sequence[tuple[float, float]]) -> None:
    for (lo, hi), nxt in zip(bins, list(bins[1:]) + [None]):
        if not lo < hi:
            raise ValueError(f"area bin ({lo}, {hi}) is empty: lo must be below hi")
        if nxt is not None and nxt[0] != hi:
            raise ValueError(f"area bins must be contiguous: ({lo}, {hi}) is followed by {nxt}")


def read_per_sample(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a ``per_sample.jsonl`` (or of the evaluation folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "per_sample.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; it is written by stvg_lab.evaluate.evaluate_model")
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {i}: not JSON ({e})") from None
    return rows


def _number(row: Mapping[str, Any], key: str, i: int, required: bool) -> float | None:
    value = row.get(key)
    if value is None:
        if required:
            raise ValueError(f"per-sample row {i} (id {row.get('id')!r}) has no {key!r}; "
                             "expected the rows of stvg_lab.evaluate's per_sample.jsonl")
        return None
    value = float(value)
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"per-sample row {i} (id {row.get('id')!r}): {key} = {value} is outside [0, 1]")
    return value


def scale_analysis(
    per_sample_rows: Iterable[Mapping[str, Any]],
    bins: Sequence[tuple[float, float]] = AREA_BINS,
    *,
    area_key: str = AREA_KEY,
    think_key: str = THINK_KEY,
    pred_key: str = PRED_KEY,
):
    """Per area bin: ``bin, lo, hi, n, n_think, think_vIoU, pred_vIoU, delta`` as a pandas DataFrame.

    vIoU values are fractions (as in ``per_sample.jsonl``); ``delta = pred_vIoU − think_vIoU``.
    Rows are read with ``area_key`` / ``think_key`` / ``pred_key``; a row lacking the area or
    the pred vIoU, or with a value outside [0, 1], raises ValueError naming the row. Empty bins
    give ``n = 0`` and NaN means.
    """
    import pandas as pd

    bins = [tuple(map(float, b)) for b in bins]
    _check_bins(bins)
    lo_all, hi_all = bins[0][0], bins[-1][1]
    think_sum, pred_sum = np.zeros(len(bins)), np.zeros(len(bins))
    n, n_think = np.zeros(len(bins), dtype=int), np.zeros(len(bins), dtype=int)
    for i, row in enumerate(per_sample_rows):
        area = _number(row, area_key, i, required=True)
        pred = _number(row, pred_key, i, required=True)
        think = _number(row, think_key, i, required=False)
        if not lo_all <= area <= hi_all:
            raise ValueError(f"per-sample row {i} (id {row.get('id')!r}): {area_key} = {area} is outside the bins [{lo_all}, {hi_all}]")
        # half-open [lo, hi), the last bin closed
        k = next(j for j, (lo, hi) in enumerate(bins) if lo <= area < hi or (j == len(bins) - 1 and area == hi))
        n[k] += 1
        pred_sum[k] += pred
        if think is not None:
            n_think[k] += 1
            think_sum[k] += think
    with np.errstate(invalid="ignore", divide="ignore"):
        pred_mean = np.where(n > 0, pred_sum / np.maximum(n, 1), np.nan)
        think_mean = np.where(n_think > 0, think_sum / np.maximum(n_think, 1), np.nan)
    frame = pd.DataFrame({
        "bin": [bin_label(lo, hi) for lo, hi in bins],
        "lo": [lo for lo, _ in bins],
        "hi": [hi for _, hi in bins],
        "n": n,
        "n_think": n_think,
        "think_vIoU": think_mean,
        "pred_vIoU": pred_mean,
        "delta": pred_mean - think_mean,
    })
    return frame[list(COLUMNS)]


def plot_scale(analysis, ax=None, title: str | None = "vIoU across object scales (cf. paper Fig. 4)"):
    """Fig. 4: blue think-vIoU curve, red pred-vIoU curve (left axis, %), green Δ bars (right axis, points).

    ``analysis`` is :func:`scale_analysis`'s frame. Empty bins have no point and no bar (the
    curves join the bins on either side; the tick labels show ``n = 0``). Bin labels carry ``n``. Returns the matplotlib Figure (the Agg backend is fine).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4))
    else:
        fig = ax.figure
    x = np.arange(len(analysis))
    think = np.asarray(analysis["think_vIoU"], dtype=float) * 100
    pred = np.asarray(analysis["pred_vIoU"], dtype=float) * 100
    delta = np.asarray(analysis["delta"], dtype=float) * 100
    bars_ax = ax.twinx()
    bars_ax.bar(x, np.nan_to_num(delta), width=0.5, color="tab:green", alpha=0.35, label="Δ vIoU (pred − think)")
    bars_ax.axhline(0.0, color="tab:green", linewidth=0.5)
    bars_ax.set_ylabel("Δ vIoU (points)", color="tab:green")
    # empty bins (NaN) are skipped, so each curve joins the bins that have samples
    ok_t, ok_p = ~np.isnan(think), ~np.isnan(pred)
    ax.plot(x[ok_t], think[ok_t], "o-", color="tab:blue", label="<think_bbox> vIoU")
    ax.plot(x[ok_p], pred[ok_p], "s-", color="tab:red", label="<pred_bbox> vIoU")
    ax.set_ylim(bottom=0.0)
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_zorder(bars_ax.get_zorder() + 1)  # curves above the bars
    ax.patch.set_visible(False)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{b}\n(n={k})" for b, k in zip(analysis["bin"], analysis["n"])], fontsize=8)
    ax.set_xlabel("ground-truth box area / frame area")
    ax.set_ylabel("mean vIoU (%)")
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = bars_ax.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, loc="upper left", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig
