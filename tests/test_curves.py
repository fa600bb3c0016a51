"""stvg_lab.viz.curves: series read out of training logs, and the figures built from them."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from stvg_lab.analysis.scale import AREA_BINS
from stvg_lab.viz.curves import log_series, plot_dataset_statistics, plot_training_log, reward_keys

NAN = float("nan")
# a GRPO-like log: two logging steps, then TRL's end-of-training summary (no per-step keys)
LOG = [
    {"step": 1, "epoch": 0.5, "loss": 2.0, "rewards/format_reward/mean": 0.25, "rewards/format_reward/std": 0.1,
     "rewards/format_reward/group_std": 0.0, "rewards/think_reward/mean": 0.0, "kl": 0.0, "flag": True},
    {"step": 2, "epoch": 1.0, "loss": NAN, "rewards/format_reward/mean": 0.5, "rewards/format_reward/std": 0.2,
     "rewards/format_reward/group_std": 0.1, "rewards/think_reward/mean": 0.1, "kl": 0.01, "flag": False},
    {"step": 2, "epoch": 1.0, "train_loss": 1.5, "train_runtime": 3.0},
]


@pytest.mark.parametrize(
    "key, x, xs, ys",
    [
        ("loss", "step", [1, 2], [2.0, NAN]),  # NaN kept: a diverged loss must show; the summary row has no "loss"
        ("train_loss", "step", [2], [1.5]),  # only the summary has it
        ("loss", "epoch", [0.5, 1.0], [2.0, NAN]),  # another x axis
        ("flag", "step", [], []),  # booleans are not numbers to plot
        ("missing", "step", [], []),
    ],
)
def test_log_series(key, x, xs, ys):
    got_x, got_y = log_series(LOG, key, x)
    assert got_x.tolist() == xs
    assert np.array_equal(got_y, np.asarray(ys, dtype=float), equal_nan=True)


@pytest.mark.parametrize(
    "stat, expected",
    [
        ("mean", ["rewards/format_reward/mean", "rewards/think_reward/mean"]),  # first-seen order, group_std not a mean
        ("group_std", ["rewards/format_reward/group_std"]),
        ("frac_zero_std", []),
    ],
)
def test_reward_keys(stat, expected):
    assert reward_keys(LOG, stat) == expected


def test_plot_training_log_panels_and_band():
    fig = plot_training_log(LOG, ["rewards/format_reward/mean", "rewards/think_reward/mean", "kl", "loss"], ncols=3)
    axes = fig.axes
    assert len(axes) == 6 and [ax.get_visible() for ax in axes] == [True] * 4 + [False] * 2  # 2 rows of 3, 2 unused
    assert [ax.get_title() for ax in axes[:4]] == ["format_reward (mean)", "think_reward (mean)", "kl", "loss"]
    # a band where the std is logged (format), none where it is not (think)
    assert sum(isinstance(c, PolyCollection) for c in axes[0].collections) == 1
    assert not any(isinstance(c, PolyCollection) for c in axes[1].collections)
    assert axes[0].lines[0].get_ydata().tolist() == [0.25, 0.5]
    no_band = plot_training_log(LOG, ["rewards/format_reward/mean"], band=False, titles={"rewards/format_reward/mean": "R_f"})
    assert not no_band.axes[0].collections and no_band.axes[0].get_title() == "R_f"


def test_plot_training_log_missing_keys():
    with pytest.raises(ValueError, match=r"no log record holds \['entropy'\].*numeric keys in the log: .*'kl'"):
        plot_training_log(LOG, ["loss", "entropy"])
    fig = plot_training_log(LOG, ["loss", "entropy"], skip_missing=True)  # kl-less runs (beta 0) still plot
    assert [ax.get_title() for ax in fig.axes] == ["loss"]
    with pytest.raises(ValueError, match="no keys to plot"):
        plot_training_log(LOG, ["entropy"], skip_missing=True)
    with pytest.raises(ValueError, match="x must be"):
        plot_training_log(LOG, ["loss"], x="time_of_day")


def test_plot_dataset_statistics():
    stats = pd.DataFrame({
        "split": ["train", "train", "train", "test"],
        "tube_seconds": [1.0, 2.0, 3.0, 2.5],
        "area_ratio": [0.005, 0.02, 0.05, 0.03],
        "small": [True, False, False, None],  # test: a real-data split without tags
        "short": [False, False, True, None],
        "occluded": [False, False, False, None],
    })
    fig = plot_dataset_statistics(stats, area_bins=AREA_BINS)
    length, area, tags = fig.axes
    assert [t.get_text() for t in length.get_legend().get_texts()] == ["train (n=3)", "test (n=1)"]
    # the inner bin edges inside the data's range (0.005..0.05): 0.01 and 0.04
    assert sorted(line.get_xdata()[0] for line in area.lines) == [0.01, 0.04]
    heights = [round(p.get_height(), 3) for p in tags.patches]
    assert heights[:3] == [pytest.approx(100 / 3, abs=1e-3), pytest.approx(100 / 3, abs=1e-3), 0.0]  # train's tag rates
    assert heights[3:] == [0.0, 0.0, 0.0] and "no tags" in tags.get_legend().get_texts()[1].get_text()
    with pytest.raises(ValueError, match="area_ratio"):
        plot_dataset_statistics(stats.drop(columns="area_ratio"))
    assert math.isfinite(fig.get_figwidth())
