"""stvg_lab.analysis.paired: per-clip scores and the paired bootstrap, on literal rows (no model)."""

from __future__ import annotations

import json

import pytest

from stvg_lab.analysis.paired import REWARD_METRICS, clip_scores, compare_evaluations, paired_difference


def _row(sid: str, tiou: float, viou: float, think: float | None = None) -> dict:
    return {"id": sid, "tIoU_pred": tiou, "vIoU_pred": viou, "tIoU_think": think, "vIoU_think": think}


def _folders(tmp_path, arms: dict) -> dict:
    """One folder per arm name under ``tmp_path``, holding its rows as ``per_sample.jsonl``."""
    dirs = {}
    for name, rows in arms.items():
        dirs[name] = tmp_path / name
        dirs[name].mkdir()
        (dirs[name] / "per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return dirs


ROWS = [_row("a", 0.9, 0.3), _row("b", 0.5, 0.31), _row("c", 0.0, 0.0)]


@pytest.mark.parametrize("metric, expected", [
    ("m_tIoU", {"a": 0.9, "b": 0.5, "c": 0.0}),
    ("m_vIoU", {"a": 0.3, "b": 0.31, "c": 0.0}),
    ("vIoU@0.3", {"a": 0.0, "b": 1.0, "c": 0.0}),  # strict, as stvg_lab.metrics: exactly 0.3 does not count
    ("vIoU@0.5", {"a": 0.0, "b": 0.0, "c": 0.0}),
])
def test_clip_scores_per_metric(metric, expected):
    assert clip_scores(ROWS, metric) == expected


@pytest.mark.parametrize("rows, metric, tube, message", [
    ([_row("a", 1, 1), _row("a", 0, 0)], "m_vIoU", "pred", r"clip 'a' appears twice \(row 2\)"),
    ([{"tIoU_pred": 1, "vIoU_pred": 1}], "m_vIoU", "pred", "row 1 has no 'id'"),
    ([_row("a", 1, 1)], "m_vIoU", "think", "no think tube"),  # a no-think format's rows hold None
    ([_row("a", 1, 1)], "mean_IoU", "pred", "unknown metric 'mean_IoU'"),
    ([_row("a", 1, 1)], "m_vIoU", "best", "unknown tube 'best'"),
])
def test_clip_scores_refuses(rows, metric, tube, message):
    with pytest.raises(ValueError, match=message):
        clip_scores(rows, metric, tube, source="eval_x")


def _rewarded(sid: str, viou: float, total: float, spatial: float) -> dict:
    return {**_row(sid, 1.0, viou), "reward": {"total": total, "spatial": spatial, "consistency": 1.0}}


@pytest.mark.parametrize("metric, tube, expected", [
    ("R_total", "pred", {"a": 4.5, "b": 2.0}),
    ("R_spatial", "think", {"a": 1.25, "b": -0.5}),  # a reward term is the whole answer's: the tube plays no part
    ("R_consistency", "pred", {"a": 1.0, "b": 1.0}),
])
def test_clip_scores_of_reward_terms(metric, tube, expected):
    assert clip_scores([_rewarded("a", 0.3, 4.5, 1.25), _rewarded("b", 0.1, 2.0, -0.5)], metric, tube) == expected


def test_reward_terms_of_rows_scored_before_rewards_are_refused_with_the_remedy():
    with pytest.raises(ValueError, match=r"eval_x: clip 'a' \(row 1\) has no reward 'total'.*run stvg-lab evaluate"):
        clip_scores([_row("a", 1, 1)], "R_total", source="eval_x")
    with pytest.raises(ValueError, match="has no reward 'think'"):
        clip_scores([_rewarded("a", 0.3, 4.5, 1.25)], "R_think")


def test_the_reward_keys_compare_and_the_tables_read_are_the_ones_evaluations_write():
    # paired keeps its own list (importing stvg_lab.evaluate would load torch into the CLI's parser)
    from stvg_lab.analysis.tables import REWARD_COLUMNS
    from stvg_lab.evaluate import REWARD_TERMS

    assert sorted(REWARD_METRICS.values()) == sorted(REWARD_TERMS) == sorted(k for k, _ in REWARD_COLUMNS)


def test_compare_prints_rewards_in_their_own_units_and_metrics_in_points(tmp_path, capsys):
    from stvg_lab import cli

    dirs = _folders(tmp_path, {"a": [_rewarded("x", 0.6, 3.0, 0.5), _rewarded("y", 0.5, 2.5, 0.0)],
                               "b": [_rewarded("x", 0.4, 2.75, 0.5), _rewarded("y", 0.5, 2.25, 0.0)]})
    assert cli.main(["compare", "--a", str(dirs["a"]), "--b", str(dirs["b"]), "--n-boot", "20",
                     "--metrics", "m_vIoU", "R_total", "R_spatial"]) == 0
    rows = {line.split(" | ")[1]: line for line in capsys.readouterr().out.splitlines() if line.startswith("| a - b")}
    assert list(rows) == ["m_vIoU (pred)", "R_total", "R_spatial"]
    assert "| 55.0 | 45.0 | +10.0 | [+0.0, +20.0] |" in rows["m_vIoU (pred)"]
    assert "| 2.750 | 2.500 | +0.250 | [+0.250, +0.250] | 0.000 | 2 / 0 |" in rows["R_total"]
    assert "| 0.250 | 0.250 | +0.000 |" in rows["R_spatial"]


def test_identical_arms_differ_by_nothing_in_every_draw():
    s = {"a": 0.2, "b": 0.7, "c": 0.4}
    r = paired_difference([s, s], [s], n_boot=200)
    assert (r.diff, r.lo, r.hi, r.wins, r.losses) == (0.0, 0.0, 0.0, 0, 0)
    assert r.share_not_better == 1.0  # a never beats b: ties count against a


def test_a_constant_gain_on_every_clip_is_certain_whatever_the_draw():
    b = {"a": 0.2, "b": 0.7, "c": 0.4}
    a = {k: v + 0.1 for k, v in b.items()}
    r = paired_difference([a], [b], n_boot=200)
    assert r.diff == pytest.approx(0.1) and r.lo == pytest.approx(0.1) and r.hi == pytest.approx(0.1)
    assert (r.share_not_better, r.wins, r.losses, r.n_clips) == (0.0, 3, 0, 3)


def test_pairing_removes_the_clips_difficulty():
    """Clip difficulty varies 0..0.9 but a is 0.05 above b on each clip: paired, the interval is one point wide
    (0.05 exactly); unpaired draws would spread it over the clips' own spread."""
    b = {str(i): i / 10 for i in range(10)}
    a = {k: v + 0.05 for k, v in b.items()}
    r = paired_difference([a], [b], n_boot=500)
    assert r.hi - r.lo == pytest.approx(0.0, abs=1e-12)


def test_one_clip_of_four_decides_how_often_a_draw_shows_no_gain():
    """a beats b on clip 'w' only: a draw shows no gain when it misses 'w', which happens (3/4)^4 = 0.316 of the time."""
    b = {k: 0.0 for k in "wxyz"}
    a = dict(b, w=1.0)
    r = paired_difference([a], [b], n_boot=20_000, seed=1)
    assert r.diff == 0.25 and r.lo == 0.0
    assert r.share_not_better == pytest.approx(0.75 ** 4, abs=0.01)


def test_seeds_are_drawn_per_arm():
    """Two runs of a that disagree (0 and 1 on every clip) and one b run at 0.5: the clips are alike, so
    every spread comes from drawing a's runs: both 0 (1/4), both 1 (1/4) or one each (1/2)."""
    clips = ("p", "q")
    a0, a1, b = ({c: v for c in clips} for v in (0.0, 1.0, 0.5))
    r = paired_difference([a0, a1], [b], n_boot=20_000, level=0.9)
    assert r.diff == 0.0 and (r.seeds_a, r.seeds_b) == (2, 1)
    assert r.share_not_better == pytest.approx(0.75, abs=0.01)  # draws at -0.5 and at 0
    assert (r.lo, r.hi) == (-0.5, 0.5)  # 90 %: both one-sided 5 % tails lie in the 1/4 draws at the ends


@pytest.mark.parametrize("b, message", [
    ({"a": 0.0}, r"arm b, eval_b0: .*lacks \['b'\]"),
    ({"a": 0.0, "b": 0.0, "z": 0.0}, r"arm b, eval_b0: .*has extra \['z'\]"),
])
def test_runs_on_other_clips_are_refused_by_name(b, message):
    with pytest.raises(ValueError, match=message):
        paired_difference([{"a": 1.0, "b": 1.0}], [b], names_a=["eval_a0"], names_b=["eval_b0"])


def test_bad_arguments_are_refused():
    s = {"a": 1.0}
    for kwargs, message in (({"a": [], "b": [s]}, "at least one run"), ({"a": [s], "b": [s], "n_boot": 0}, "n_boot"),
                            ({"a": [s], "b": [s], "level": 1.0}, "level"), ({"a": [{}], "b": [s]}, "no clips")):
        with pytest.raises(ValueError, match=message):
            paired_difference(**kwargs)


def test_compare_evaluations_reads_folders_and_the_means_are_the_reported_metrics(tmp_path):
    """From per_sample.jsonl folders; each arm's mean is what metrics.json reports (a failed answer is a 0 row)."""
    from stvg_lab import cli

    dirs = _folders(tmp_path, {"a0": [_row("x", 1.0, 0.6), _row("y", 0.0, 0.0)], "a1": [_row("x", 0.8, 0.4), _row("y", 0.5, 0.2)],
                               "b0": [_row("x", 0.6, 0.2), _row("y", 0.4, 0.0)]})
    rows = compare_evaluations([dirs["a0"], dirs["a1"]], [dirs["b0"]], n_boot=100)
    by = {r.metric: r for r in rows}
    assert by["m_tIoU"].mean_a == pytest.approx(0.575) and by["m_tIoU"].mean_b == pytest.approx(0.5)
    assert by["m_vIoU"].diff == pytest.approx(0.3 - 0.1)
    assert by["vIoU@0.3"].mean_a == pytest.approx(0.5) and by["vIoU@0.5"].mean_b == 0.0
    assert cli.main(["compare", "--a", str(dirs["a0"]), "--b", str(dirs["b0"]), "--n-boot", "50", "--metrics", "m_vIoU"]) == 0
    with pytest.raises(FileNotFoundError, match="nowhere"):
        compare_evaluations([tmp_path / "nowhere"], [dirs["b0"]])


def test_variant_differences_compare_the_reference_with_each_finished_variant(tmp_path):
    """A grid's finished runs are the seeds of their variant; failed runs (no metrics) are left out."""
    from types import SimpleNamespace

    from stvg_lab.analysis.paired import variant_differences

    def run(variant: str, seed: int, viou: float | None) -> SimpleNamespace:
        d = tmp_path / f"{variant}_{seed}"
        d.mkdir()
        if viou is not None:
            (d / "per_sample.jsonl").write_text("".join(json.dumps(_row(c, 1.0, viou)) + "\n" for c in "xy"))
        return SimpleNamespace(variant=variant, metrics={"pred": {}} if viou is not None else None, eval_dir=d)

    grid = SimpleNamespace(out_dir=tmp_path, runs=[run("full", 0, 0.5), run("full", 1, 0.3), run("giou_only", 0, 0.2),
                                                   run("no_think_bbox", 0, None)])
    got = variant_differences(grid, metrics=("m_vIoU",), n_boot=50)
    assert list(got) == ["full - giou_only"]  # the failed no_think_bbox run has nothing to compare
    r = got["full - giou_only"][0]
    assert (r.seeds_a, r.seeds_b) == (2, 1) and r.diff == pytest.approx(0.4 - 0.2)
    with pytest.raises(ValueError, match="no finished run of the reference variant 'lambda_k=0.2'"):
        variant_differences(grid, reference="lambda_k=0.2")


def _tagged(sid: str, viou: float, n: int | None) -> dict:
    row = _row(sid, 1.0, viou)
    row["tags"] = {} if n is None else {"n_distractors": n, "event": "cross"}
    return row


def test_compare_by_tag_splits_the_clips_by_value_and_pairs_within_each_group(tmp_path):
    """a gains 0.2 on the clips without distractors, loses 0.1 on those with two, ties on the untagged one;
    overall +0.025 over 4 clips. Groups in sorted order, clips without the tag (None) last."""
    from stvg_lab.analysis.paired import compare_by_tag

    dirs = _folders(tmp_path, {
        "a": [_tagged("w", 0.5, 2), _tagged("x", 0.6, 0), _tagged("y", 0.4, 0), _tagged("z", 0.3, None)],
        "b": [_tagged("w", 0.6, 2), _tagged("x", 0.4, 0), _tagged("y", 0.2, 0), _tagged("z", 0.3, None)],
    })
    got = compare_by_tag([dirs["a"]], [dirs["b"]], "n_distractors", metrics=("m_vIoU",), n_boot=100)
    assert list(got) == ["n_distractors = 0 (2 clips)", "n_distractors = 2 (1 clips)", "n_distractors = None (1 clips)"]
    zero, two, none = (g[0] for g in got.values())
    assert (zero.diff, zero.lo, zero.hi, zero.wins, zero.n_clips) == (pytest.approx(0.2), pytest.approx(0.2), pytest.approx(0.2), 2, 2)
    assert (two.diff, two.losses) == (pytest.approx(-0.1), 1)
    assert (none.diff, none.wins, none.losses) == (0.0, 0, 0)
    overall = compare_evaluations([dirs["a"]], [dirs["b"]], metrics=("m_vIoU",), n_boot=100)[0]
    # the groups' differences weighted by their clips give the overall one back
    assert overall.diff == pytest.approx((2 * zero.diff + two.diff + none.diff) / 4)


def test_compare_by_tag_refuses_an_absent_tag_and_runs_that_disagree_on_a_clip(tmp_path):
    from stvg_lab.analysis.paired import compare_by_tag

    dirs = _folders(tmp_path, {
        "a": [_tagged("x", 0.5, 0), _tagged("y", 0.5, 1)],
        "b": [_tagged("x", 0.4, 0), _tagged("y", 0.4, 1)],
        "other_data": [_tagged("x", 0.4, 1), _tagged("y", 0.4, 1)],  # clip x tagged 1 here, 0 in a
    })
    with pytest.raises(ValueError, match=r"no clip of .*a has the tag 'small'; its rows' tags are \['event', 'n_distractors'\]"):
        compare_by_tag([dirs["a"]], [dirs["b"]], "small")
    with pytest.raises(ValueError, match=r"other_data: clip 'x' \(row 1\) has n_distractors=1 where another run has 0"):
        compare_by_tag([dirs["a"]], [dirs["other_data"]], "n_distractors")
    with pytest.raises(ValueError, match=r"tag 'n_distractors' has 2 values over 2 clips \(more than 1\)"):
        compare_by_tag([dirs["a"]], [dirs["b"]], "n_distractors", max_groups=1)  # as a continuous tag would


def test_compare_cli_by_tag_prints_the_overall_and_the_group_rows(tmp_path, capsys):
    from stvg_lab import cli

    dirs = _folders(tmp_path, {"a": [_tagged("x", 0.6, 0), _tagged("y", 0.5, 1)], "b": [_tagged("x", 0.4, 0), _tagged("y", 0.5, 1)]})
    assert cli.main(["compare", "--a", str(dirs["a"]), "--b", str(dirs["b"]), "--n-boot", "20", "--metrics", "m_vIoU",
                     "--by", "n_distractors"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| a - b")]
    assert [r.split(" | ")[0] for r in rows] == ["| a - b", "| a - b, n_distractors = 0 (1 clips)", "| a - b, n_distractors = 1 (1 clips)"]
    assert "| +10.0 |" in rows[0] and "| +20.0 |" in rows[1] and "| +0.0 |" in rows[2]
    assert "1/2 clips, runs per arm (a, b): (1, 1)" in out
