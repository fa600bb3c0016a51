"""Paper numbers, tables (markdown/LaTeX), the object-scale analysis (Fig. 4) and the open-vocabulary split."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stvg_lab.analysis.open_vocab import (
    check_open_vocab_split,
    cross_dataset_protocol,
    make_open_vocab_split,
    query_names,
)
from stvg_lab.analysis.paper import paper_row, paper_variants
from stvg_lab.analysis.scale import AREA_BINS, plot_scale, read_per_sample, scale_analysis
from stvg_lab.analysis.tables import ablation_table, complexity_table, format_cell, mean_spread, results_table
from stvg_lab.data.synth import MOTIONS, PALETTE, SHAPES, SIZES, SynthConfig, load_synthetic
from stvg_lab.data.synth_scene import _motion_phrase

FIXTURES = Path(__file__).parent / "fixtures" / "formats"
METRICS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
CAPTION = "ours: synthetic benchmark, CPU stand-in model — not comparable in scale to the paper's HCSTVG-v1 / Qwen2.5-VL-7B numbers"


# --- paper numbers -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "table, variant, benchmark, expected",
    [
        ("tab5", "no_think_bbox", None, [58.5, 41.8, 68.7, 38.9]),
        ("tab6", "no_think_reward", None, [59.3, 42.2, 69.1, 39.9]),
        ("tab7", "l1_only", None, [58.5, 39.9, 67.0, 34.6]),
        ("tab8", "lambda_k=0.5", None, [60.3, 44.1, 73.3, 43.5]),  # the full model's row
        ("tab8", "lambda_k=0", None, [None] * 4),  # our extra row: no paper value
        ("tab4", "TA-STVG", None, [30.1, 20.9, None, None]),  # partial row (§4.2 gives two numbers)
        ("main", "STVG-o1", None, [60.3, 44.1, 73.3, 43.5]),  # default benchmark HCSTVG-v1
        ("main", "STCAT", "hcstvg-v2", [None] * 4),  # a cell the paper leaves empty
        ("main", "Qwen2.5-VL-SFT", "vidstg-interrogative", [40.9, 17.1, 17.6, 13.9]),
    ],
)
def test_paper_row(table, variant, benchmark, expected):
    row = paper_row(table, variant, benchmark)
    assert [row[m] for m in METRICS] == expected


def test_paper_row_tab9_and_errors():
    assert paper_row("tab9", "STVG-o1")["latency_s"] == 15.49
    assert paper_row("tab9", "STVG-o1")["memory_gb"] == 24.2
    assert paper_variants("tab5") == ["no_think_bbox", "full"]  # the paper's row order
    for args in [("tab99", "full"), ("tab5", "nope"), ("main", "STVG-o1", "kinetics")]:
        with pytest.raises(KeyError):
            paper_row(*args)


# --- tables --------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.5, 0.6], (0.55, math.sqrt(0.005), 2)),  # sample std: sqrt(((-.05)^2 + .05^2) / (2 - 1))
        ([0.4], (0.4, None, 1)),  # one seed: no spread
        ([0.3, 0.3, 0.3], (0.3, 0.0, 3)),  # identical seeds: zero spread
    ],
)
def test_mean_spread(values, expected):
    mean, std, n = mean_spread(values)
    assert mean == pytest.approx(expected[0])
    assert (std is None) == (expected[1] is None) and (std is None or std == pytest.approx(expected[1]))
    assert n == expected[2]


@pytest.mark.parametrize(
    "mean, spread, kw, expected",
    [
        (0.55, 0.0707, {}, "55.0 ± 7.1"),  # fractions -> % with one decimal
        (0.4, None, {}, "40.0"),  # no spread
        (None, None, {}, "—"),  # missing
        (float("nan"), None, {}, "—"),  # NaN is missing too
        (15.49, None, {"scale": 1.0, "digits": 2}, "15.49"),  # already in the unit
    ],
)
def test_format_cell(mean, spread, kw, expected):
    assert format_cell(mean, spread, **kw) == expected


def _tidy(variant, seed, tube, values):
    return [{"variant": variant, "seed": seed, "tube": tube, "metric": m, "value": v} for m, v in zip(METRICS, values)]


RESULTS = (
    # full, two seeds: m_tIoU 50, 60 -> 55.0 ± 7.1; m_vIoU 30, 34 -> 32.0 ± 2.8; vIoU@0.3 40, 40 -> 40.0 ± 0.0;
    # vIoU@0.5 10, 20 -> 15.0 ± 7.1
    _tidy("full", 0, "pred", [0.50, 0.30, 0.40, 0.10])
    + _tidy("full", 1, "pred", [0.60, 0.34, 0.40, 0.20])
    + _tidy("full", 0, "think", [0.10, 0.10, 0.10, 0.10])  # a think row: must not leak into the pred table
    # no think bbox, one seed: means only
    + _tidy("no_think_bbox", 0, "pred", [0.45, 0.25, 0.35, 0.05])
)


def test_ablation_table_markdown():
    md = ablation_table(RESULTS, "tab5")
    lines = md.splitlines()
    assert CAPTION in lines[0]
    assert "sample std (n−1)" in lines[0]
    assert lines[2].startswith("| Variant | seeds | ours m_tIoU |") and "paper m_tIoU" in lines[2]
    # the paper's row order: w/o think bbox first
    assert lines[4] == "| RFT w/o think bbox | 1 | 45.0 | 25.0 | 35.0 | 5.0 | 58.5 | 41.8 | 68.7 | 38.9 |"
    assert lines[5] == ("| RFT w/ think bbox (full STVG-o1) | 2 | 55.0 ± 7.1 | 32.0 ± 2.8 | 40.0 ± 0.0 | 15.0 ± 7.1 "
                        "| 60.3 | 44.1 | 73.3 | 43.5 |")


def test_ablation_table_think_tube_and_missing_rows():
    md = ablation_table(RESULTS, "tab5", tube="think")
    assert "| RFT w/ think bbox (full STVG-o1) | 1 | 10.0 | 10.0 | 10.0 | 10.0 |" in md
    assert "| RFT w/o think bbox | — | — | — | — | — | 58.5 |" in md  # not run for this tube: paper only


def test_ablation_table_tab8_aliases_and_extra_rows():
    md = ablation_table(RESULTS, "tab8")
    assert "| λk = 0.5 (full STVG-o1) | 2 | 55.0 ± 7.1 |" in md  # "full" answers for λk = 0.5
    assert "λk = 0 |" not in md  # our extra row appears only when run
    md = ablation_table(RESULTS + _tidy("lambda_k=0", 0, "pred", [0.2, 0.1, 0.1, 0.0]), "tab8")
    assert "| λk = 0 | 1 | 20.0 | 10.0 | 10.0 | 0.0 | — | — | — | — |" in md


def test_ablation_table_latex():
    tex = ablation_table(RESULTS, "tab7", fmt="latex")
    assert tex.startswith("\\begin{table}")
    assert "\\begin{tabular}{lrrrrrrrrr}" in tex
    assert "\\multicolumn{4}{c}{ours} & \\multicolumn{4}{c}{paper}" in tex
    assert "m\\_tIoU" in tex and "\\%" in tex  # escaped
    assert "GIoU + L1 (full STVG-o1) & 2 & 55.0 $\\pm$ 7.1 & 32.0 $\\pm$ 2.8" in tex
    assert "GIoU only & -- & -- & -- & -- & -- & 58.6 & 40.6 & 67.6 & 36.6 \\\\" in tex
    assert "not comparable in scale" in tex
    assert "$\\lambda_k$" in ablation_table(RESULTS, "tab8", fmt="latex")


def test_ablation_table_rejects_bad_input():
    with pytest.raises(ValueError):
        ablation_table(RESULTS, "tab9")  # not an ablation table
    with pytest.raises(ValueError):
        ablation_table([{"variant": "full"}], "tab5")  # not tidy rows


def _metrics(v, think=True, baselines=None):
    scores = dict(zip(METRICS, [v, v / 2, v, v / 4]))
    return {"pred": scores, "think": dict(zip(METRICS, [v - 0.1] * 4)) if think else None, "baselines": baselines or {}}


def test_results_table():
    md = results_table(
        {"SFT": _metrics(0.5, baselines={"gt_span_mean_box": dict(zip(METRICS, [1.0, 0.2, 0.3, 0.1]))}),
         "GRPO": [_metrics(0.6), _metrics(0.8)],  # two seeds: 70.0 ± 14.1
         "no think": _metrics(0.4, think=False)}
    )
    assert "| SFT | think | 1 | 40.0 | 40.0 | 40.0 | 40.0 |" in md
    assert "| SFT | pred | 1 | 50.0 | 25.0 | 50.0 | 12.5 |" in md
    assert "| GRPO | pred | 2 | 70.0 ± 14.1 | 35.0 ± 7.1 | 70.0 ± 14.1 | 17.5 ± 3.5 |" in md
    assert "| no think | think |" not in md  # no-think format: pred row only
    assert "| baseline: gt_span_mean_box | pred | 1 | 100.0 | 20.0 | 30.0 | 10.0 |" in md
    assert "| paper (hcstvg-v1): STVG-o1 | pred | — | 60.3 | 44.1 | 73.3 | 43.5 |" in md
    assert CAPTION in md
    assert "\\begin{tabular}" in results_table({"SFT": _metrics(0.5)}, fmt="latex")


def test_results_table_gives_each_model_its_span_control():
    control = lambda v: {**_metrics(v), "controls": {"pred span + mean box": dict(zip(METRICS, [v, 0.1, 0.2, 0.0]))}}  # noqa: E731
    md = results_table({"SFT": control(0.5), "GRPO": [control(0.6), control(0.8)]})
    lines = md.splitlines()
    # below each model's own rows, before the next model; seeds averaged like the model's rows
    assert lines.index("| SFT | pred span + mean box | 1 | 50.0 | 10.0 | 20.0 | 0.0 |") == lines.index("| SFT | pred | 1 | 50.0 | 25.0 | 50.0 | 12.5 |") + 1
    assert "| GRPO | pred span + mean box | 2 | 70.0 ± 14.1 | 10.0 ± 0.0 | 20.0 ± 0.0 | 0.0 ± 0.0 |" in lines
    assert "pred span + mean box" not in results_table({"SFT": control(0.5)}, include_baselines=False)


def _eval_dir(root: Path, name: str, ids, latency, tokens) -> Path:
    d = root / name
    d.mkdir()
    metrics = {**_metrics(0.5), "n": len(ids), "settings": {"batch_size": 1}, "max_peak_mem_bytes": 2.5e9, "mem_measure": ["cpu_rss_peak"],
               "parse_failure_rate": 0.5, "mean_latency_s": 99.0}
    (d / "metrics.json").write_text(json.dumps(metrics))
    (d / "per_sample.jsonl").write_text("".join(
        json.dumps({"id": i, "latency_s": lat, "generated_tokens": tok}) + "\n" for i, lat, tok in zip(ids, latency, tokens)
    ))
    return d


def test_complexity_table(tmp_path):
    paper = _eval_dir(tmp_path, "paper", ["a", "b"], [1.0, 3.0], [10, 20])
    compact = _eval_dir(tmp_path, "compact", ["b", "a"], [0.5, 0.5], [4, 6])
    md = complexity_table({"paper": paper, "compact": compact})
    # latency 1, 3 -> 2.000 ± 1.414 (per-sample values win over metrics.json's mean); tokens 10, 20 -> 15.0 ± 7.1
    assert "| paper | 2 | 1 | 2.000 ± 1.414 | 15.0 ± 7.1 | 2.50 | cpu_rss_peak | 50.0 |" in md
    assert "| compact | 2 | 1 | 0.500 ± 0.000 | 5.0 ± 1.4 | 2.50 | cpu_rss_peak | 50.0 |" in md
    assert "| paper: STVG-o1 (Qwen2.5-VL-7B) | — | — | 15.49 | — | 24.2 | one GPU | — |" in md
    assert "same 2 samples" in md.splitlines()[0]
    other = _eval_dir(tmp_path, "other", ["a", "c"], [1.0, 1.0], [1, 1])
    with pytest.raises(ValueError, match="same samples"):
        complexity_table({"paper": paper, "no_think": other})  # different samples: not comparable
    assert "| no_think | 2 | 1 |" in complexity_table({"paper": paper, "no_think": other}, require_same_samples=False)


# --- object scale (Fig. 4) -----------------------------------------------------------------------

SCALE_ROWS = [
    {"id": "a", "gt_area_ratio": 0.005, "vIoU_think": 0.2, "vIoU_pred": 0.4},  # smallest bin
    {"id": "b", "gt_area_ratio": 0.04, "vIoU_think": 0.3, "vIoU_pred": 0.5},  # exactly a lower edge: 0.04–0.09
    {"id": "c", "gt_area_ratio": 0.06, "vIoU_think": 0.5, "vIoU_pred": 0.6},
    {"id": "d", "gt_area_ratio": 0.06, "vIoU_think": None, "vIoU_pred": 0.9},  # no think tube: pred only
    {"id": "e", "gt_area_ratio": 0.25, "vIoU_think": 0.1, "vIoU_pred": 0.1},  # upper edge of 0.16–0.25 -> next bin
    {"id": "f", "gt_area_ratio": 1.0, "vIoU_think": 0.3, "vIoU_pred": 0.5},  # full frame: the last bin is closed
]


def test_area_bins_reproduce_the_papers_bin():
    assert (0.04, 0.09) in AREA_BINS
    assert AREA_BINS[0][0] == 0.0 and AREA_BINS[-1][1] == 1.0


def test_scale_analysis_hand_computed():
    frame = scale_analysis(SCALE_ROWS)
    assert list(frame["bin"]) == ["0–0.01", "0.01–0.04", "0.04–0.09", "0.09–0.16", "0.16–0.25", "0.25–1"]
    assert list(frame["n"]) == [1, 0, 3, 0, 0, 2]
    assert list(frame["n_think"]) == [1, 0, 2, 0, 0, 2]
    expected = {  # bin index: (think, pred, delta)
        0: (0.2, 0.4, 0.2),
        2: ((0.3 + 0.5) / 2, (0.5 + 0.6 + 0.9) / 3, (0.5 + 0.6 + 0.9) / 3 - 0.4),
        5: ((0.1 + 0.3) / 2, (0.1 + 0.5) / 2, 0.1),
    }
    for k, (think, pred, delta) in expected.items():
        row = frame.iloc[k]
        assert (row["think_vIoU"], row["pred_vIoU"], row["delta"]) == pytest.approx((think, pred, delta))
    for k in (1, 3, 4):  # empty bins: n = 0 and NaN, no error
        assert math.isnan(frame.iloc[k]["pred_vIoU"]) and math.isnan(frame.iloc[k]["delta"])


def test_scale_analysis_empty_input_and_bad_rows():
    assert list(scale_analysis([])["n"]) == [0] * len(AREA_BINS)
    with pytest.raises(ValueError, match="row 0"):
        scale_analysis([{"id": "x", "vIoU_pred": 0.5}])  # no area ratio
    with pytest.raises(ValueError, match="outside"):
        scale_analysis([{"id": "x", "gt_area_ratio": 1.5, "vIoU_pred": 0.5}])


def test_read_per_sample_roundtrip(tmp_path):
    (tmp_path / "per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SCALE_ROWS))
    assert read_per_sample(tmp_path) == SCALE_ROWS


def test_plot_scale_two_curves_and_delta_bars():
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    fig = plot_scale(scale_analysis(SCALE_ROWS))
    assert isinstance(fig, Figure)
    curves_ax, bars_ax = fig.axes[0], fig.axes[1]
    assert [line.get_color() for line in curves_ax.lines] == ["tab:blue", "tab:red"]  # think, pred
    assert len(bars_ax.containers) == 1 and len(bars_ax.containers[0]) == len(AREA_BINS)
    plt.close(fig)


# --- open vocabulary -----------------------------------------------------------------------------

HELD_OUT = {"colour": ["orange", "cyan"], "shape": ["diamond"]}


@pytest.fixture(scope="module")
def open_vocab_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ov") / "synthetic_ov"
    return make_open_vocab_split(root, HELD_OUT, n_train=6, n_test=4, seed=0, n_val=2, workers=1)


def test_open_vocab_split_properties(open_vocab_root):
    for split in ("train", "val"):
        for s in load_synthetic(open_vocab_root, split):
            words = s.query.split()
            assert not {"orange", "cyan", "diamond"} & set(words), s.query
            for obj in [s.extras["attributes"], *s.extras["distractors"]]:
                assert obj["colour"] not in HELD_OUT["colour"] and obj["shape"] != "diamond"
    test = load_synthetic(open_vocab_root, "test")
    assert len(test) == 4
    for s in test:
        assert s.extras["attributes"]["colour"] in HELD_OUT["colour"] and s.extras["attributes"]["shape"] == "diamond"
        assert "diamond" in s.query.split()
    report = check_open_vocab_split(open_vocab_root, HELD_OUT)
    assert report.counts == {"train": 6, "val": 2, "test": 4}
    assert sum(report.test_words["colour"].values()) == 4


def _tamper(root: Path, dst: Path, file: str, edit) -> Path:
    """A copy of ``root`` with ``edit`` applied to the first record of ``annotations/<file>``."""
    shutil.copytree(root, dst)
    path = dst / "annotations" / file
    data = json.loads(path.read_text())
    key = sorted(data)[0]
    edit(data[key])
    path.write_text(json.dumps(data))
    return dst


def test_open_vocab_check_catches_violations(open_vocab_root, tmp_path):
    def query(record):  # a training query naming a held-out colour
        record["English"] = "the large orange circle that moves left"

    def distractor(meta):  # a training distractor with a held-out shape
        meta["distractors"] = [{"size": "large", "colour": "red", "shape": "diamond", "motion": "still"}]

    def target(meta):  # a test target with a seen colour
        meta["attributes"]["colour"] = "red"

    for name, file, edit, match in [("q", "train_v2.json", query, "names held-out colour 'orange'"),
                                    ("d", "train_meta.json", distractor, "distractor 0 has held-out shape"),
                                    ("t", "test_meta.json", target, "not a held-out word")]:
        bad = _tamper(open_vocab_root, tmp_path / name, file, edit)
        with pytest.raises(ValueError, match=match):
            check_open_vocab_split(bad, HELD_OUT)


@pytest.mark.parametrize(
    "query, attribute, word, expected",
    [
        ("the small red circle that moves left", "motion", "left", True),
        ("the small red circle that crosses the frame from left to right", "motion", "left", False),  # origin, not motion
        ("the small red circle that crosses the frame from right to left", "motion", "left", True),
        ("the small red circle that crosses the frame from bottom to top", "motion", "up", True),
        ("find the large red cross that stays still", "shape", "cross", True),
        ("the large red circle that crosses the frame from left to right", "shape", "cross", False),  # "crosses" is not "cross"
        ("the large red circle that stays still", "motion", "still", True),
    ],
)
def test_query_names(query, attribute, word, expected):
    assert query_names(query, attribute, word) is expected


@given(
    size=st.sampled_from(SIZES), colour=st.sampled_from(list(PALETTE)), shape=st.sampled_from(SHAPES),
    motion=st.sampled_from(MOTIONS), event=st.sampled_from(["appear", "move", "cross"]),
    template=st.sampled_from(SynthConfig().templates),
)
def test_query_names_matches_the_generators_phrases(size, colour, shape, motion, event, template):
    """Every query the generator can write names exactly its target's words, and no other vocabulary word."""
    event = "appear" if motion == "still" else event
    query = template.format(size=size, colour=colour, shape=shape, motion=_motion_phrase(event, motion))
    target = {"size": size, "colour": colour, "shape": shape, "motion": motion}
    for attribute, words in {"size": SIZES, "colour": list(PALETTE), "shape": SHAPES, "motion": MOTIONS}.items():
        for word in words:
            assert query_names(query, attribute, word) is (word == target[attribute]), (query, attribute, word)


def test_cross_dataset_protocol_plumbing(tmp_path):
    root = tmp_path / "vidstg"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(FIXTURES / "vidstg_raw_annotations.json", root / "annotations" / "train_annotations.json")
    proto = cross_dataset_protocol(
        root / "annotations" / "train_annotations.json", FIXTURES / "vidor", FIXTURES / "hcstvg_v2_raw.json",
        hcstvg_version=2,  # the fixtures hold a v2 file; the paper tests on v1
        recipe="tiny_cpu", output_dir=str(tmp_path / "run"),
    )
    assert proto.recipe.dataset == "vidstg" and proto.recipe.train_split == "train"
    assert proto.recipe.data == str(root)  # the standard layout: training finds the same samples
    assert proto.recipe.output_dir == str(tmp_path / "run")
    assert len(proto.train_samples) == 6 and {s.dataset for s in proto.train_samples} == {"vidstg"}
    assert len(proto.test_samples) == 3 and {s.dataset for s in proto.test_samples} == {"hcstvg-v2"}
    other = cross_dataset_protocol(FIXTURES / "vidstg_raw_annotations.json", FIXTURES / "vidor",
                                   FIXTURES / "hcstvg_v2_raw.json", hcstvg_version=2, recipe="tiny_cpu")
    assert other.recipe.data == "data/synthetic"  # not the standard layout: the recipe's own data is kept


def _rewarded_metrics(total: float, consistency: float) -> dict:
    terms = {"format": 1.0, "consistency": consistency, "temporal": 0.5, "spatial": total - 1.5 - consistency, "think": 0.0,
             "total": total, "spa_pred": 0.25, "spa_think": 0.0}
    return {"reward": {"lambda_k": 0.5, **terms}}


def test_heldout_reward_table_is_mean_and_spread_per_term_in_reward_units(tmp_path):
    from stvg_lab.analysis.tables import heldout_reward_table

    (tmp_path / "metrics.json").write_text(json.dumps(_rewarded_metrics(2.5, 0.5)))
    table = heldout_reward_table({"SFT": tmp_path, "GRPO": [_rewarded_metrics(3.0, 0.75), _rewarded_metrics(3.5, 1.0)]})
    lines = table.splitlines()
    assert "λk = 0.5" in lines[0]
    assert lines[2].startswith("| model | seeds | R_f (Eq. 3) | R_c (Eq. 4) |") and "| R (Eq. 10) |" in lines[2]
    assert lines[4] == "| SFT | 1 | 1.000 | 0.500 | 0.500 | 0.500 | 0.000 | 2.500 | 0.250 | 0.000 |"
    assert lines[5] == "| GRPO | 2 | 1.000 ± 0.000 | 0.875 ± 0.177 | 0.500 ± 0.000 | 0.875 ± 0.177 | 0.000 ± 0.000 | 3.250 ± 0.354 | 0.250 ± 0.000 | 0.000 ± 0.000 |"
    with pytest.raises(ValueError, match="old: an evaluation without 'reward'.*run stvg-lab evaluate"):
        heldout_reward_table({"old": {"pred": {}}})
