"""The numbered notebooks 01-05 and their plumbing (``stvg_lab.notebook``).

* Every notebook is committed clean (no outputs, a ``python3`` kernel, one ``parameters`` cell whose
  lines papermill can read, a markdown introduction first, no ``sys.path``).
* ``stvg_lab.notebook``'s helpers, on literal cases (fast, no notebook).
* ``@pytest.mark.notebook``: each notebook executed with papermill in the small setting (cwd
  ``notebooks/``, kernel ``python3``), asserting on the values it records. They run as the user
  runs them, in order, sharing one workspace: 01 generates the data, 02 trains the SFT checkpoint
  that 03 and 04 start from, 05 plots 03's evaluation. Session fixtures execute each notebook once
  (a fixture whose predecessor failed errors too), so any single test can be selected with ``-k``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from stvg_lab.analysis.scale import AREA_BINS
from stvg_lab.baselines import BASELINES
from stvg_lab.data.sample import Sample
from stvg_lab.data.synth import SPLITS, generate_synthetic, load_synthetic
from stvg_lab.notebook import (
    SETTINGS,
    SMALL_COUNTS,
    SMALL_GRID,
    Recorder,
    Workspace,
    describe_rewards,
    ensure_dataset,
    repo_root,
    reward_examples,
    reward_table,
    run_status_table,
    sample_statistics,
    small_from_env,
    split_summary,
    train_or_reuse,
)
from stvg_lab.train.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = ("01_data_prep", "02_sft_baseline", "03_grpo_training", "04_ablations", "05_object_scale_analysis")
COMMON_PARAMETERS = {"data_dir", "small", "record_path"}
PARAMETERS = {
    "01_data_prep": {"seed", "n_show", "formats_dir"},
    "02_sft_baseline": {"run_dir", "model", "recipe", "steps", "seed", "max_eval_samples", "max_new_tokens"},
    "03_grpo_training": {"run_dir", "model", "recipe", "sft_checkpoint", "steps", "seed", "num_generations",
                         "reward_variant", "lambda_k", "grpo_overrides", "max_eval_samples", "max_new_tokens"},
    "04_ablations": {"run_dir", "model", "recipe", "sft_checkpoint", "variants", "seeds", "steps", "sft_steps",
                     "max_eval_samples", "max_new_tokens"},
    "05_object_scale_analysis": {"run_dir", "eval_dir", "model", "recipe", "max_eval_samples", "max_new_tokens"},
}
REWARD_NAMES = ("format_reward", "consistency_reward", "temporal_reward", "spatial_reward", "think_reward")
METRICS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")


def _load(name: str) -> dict:
    return json.loads((NOTEBOOK_DIR / f"{name}.ipynb").read_text())  # plain JSON: nbformat's import takes seconds


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


# --------------------------------------------------------------------------- committed clean


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_clean(name):
    nb = _load(name)
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    cells = nb["cells"]
    intro = _source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and intro.startswith(f"# {name[:2]} ·")
    assert "**What it does**" in intro and "**What it needs**" in intro and "**How long**" in intro
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert not any("sys.path" in _source(c) or "chdir" in _source(c) for c in code)  # paths go through the package
    params = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(params) == 1
    names = set()
    for line in _source(params[0]).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            # papermill reads a parameter line only when it holds exactly one "=" (none in the comment)
            assert line.count("=") == 1, line
            names.add(line.split("=")[0].strip())
    assert names == COMMON_PARAMETERS | PARAMETERS[name]


# --------------------------------------------------------------------------- stvg_lab.notebook helpers


@pytest.mark.parametrize(
    "value, expected",
    [
        (None, False),  # unset: the default
        ("", False),  # set but empty (voila passes the environment through): the default
        ("1", True),  # the documented switch
        ("0", False),
        (" TRUE ", True),  # case and surrounding space ignored
        ("no", False),
    ],
)
def test_small_from_env(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("STVG_LAB_SMALL", raising=False)
    else:
        monkeypatch.setenv("STVG_LAB_SMALL", value)
    assert small_from_env() is expected


def test_small_from_env_rejects_an_unreadable_value(monkeypatch):
    monkeypatch.setenv("STVG_LAB_SMALL", "maybe")
    with pytest.raises(ValueError, match="STVG_LAB_SMALL"):
        small_from_env()


def test_repo_root_is_this_checkout():
    assert repo_root() == ROOT


def test_recorder_writes_json_types_atomically(tmp_path):
    record = Recorder(tmp_path / "sub" / "rec.json")
    assert record("arr", np.array([1.5, 2.0])).dtype == np.float64  # returns the value unchanged
    record.update({"n": np.int64(3), "path": tmp_path, "nested": {1: (np.float32(0.5), None)}, "flag": np.bool_(True)})
    assert json.loads((tmp_path / "sub" / "rec.json").read_text()) == {
        "arr": [1.5, 2.0], "n": 3, "path": str(tmp_path), "nested": {"1": [0.5, None]}, "flag": True,
    }
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["rec.json"]  # no temporary file left behind
    with pytest.raises(TypeError, match="cannot record"):
        record("bad", object())
    memory = Recorder(None)  # no path: values in memory only
    memory("x", 1)
    assert memory.values == {"x": 1}


@pytest.mark.parametrize(
    "small, name, value, expected",
    [
        (False, "sft_steps", None, None),  # full setting: the recipe's own steps
        (True, "sft_steps", None, 4),
        (True, "grpo_steps", 7, 7),  # an explicit value always wins
        (False, "grid_seeds", None, [0, 1, 2]),  # tuples come back as fresh lists
        (True, "grid_variants", None, list(SMALL_GRID)),
        (True, "max_new_tokens", None, 48),
    ],
)
def test_workspace_setting(tmp_path, small, name, value, expected):
    ws = Workspace(tmp_path / "data", tmp_path / "runs", small=small)
    assert ws.setting(name, value) == expected


def test_workspace_setting_unknown_name(tmp_path):
    with pytest.raises(KeyError, match="settings"):
        Workspace(tmp_path, tmp_path).setting("max_steps")
    assert set(SETTINGS) >= {"sft_steps", "grpo_steps", "max_eval_samples"}


def test_workspace_recipe_small_and_full(tmp_path):
    small = Workspace(tmp_path / "data", tmp_path / "runs", small=True)
    sft = small.recipe("sft", seed=3)
    assert (sft.max_steps, sft.per_device_batch_size, sft.warmup_ratio, sft.seed) == (4, 2, 0.0, 3)
    assert (sft.data, sft.output_dir) == (str(tmp_path / "data"), str(tmp_path / "runs" / "sft"))
    grpo = small.recipe("grpo", init_from="x", reward_variant="giou_only")
    assert (grpo.max_steps, grpo.num_generations, grpo.max_completion_length, grpo.init_from,
            grpo.reward_variant) == (2, 2, 48, "x", "giou_only")
    full = Workspace(tmp_path / "data", tmp_path / "runs").recipe("grpo", steps=5)
    stage = load_recipe("tiny_cpu_grpo")  # GRPO takes the shipped GRPO stage of tiny_cpu
    assert (full.max_steps, full.num_generations, full.per_device_batch_size, full.learning_rate) == \
        (5, stage.num_generations, stage.per_device_batch_size, stage.learning_rate)
    assert full.learning_rate != load_recipe("tiny_cpu").learning_rate
    with pytest.raises(ValueError, match="stage"):
        small.recipe("dpo")


class _FakeRun:
    """Stands in for run_sft / run_grpo: records calls, writes final/ with the recipe as the trainers do."""

    def __init__(self):
        self.calls = []

    def __call__(self, recipe, resume=False):
        self.calls.append(resume)
        final = Path(recipe.output_dir) / "final"
        final.mkdir(parents=True, exist_ok=True)
        recipe.save(final / "recipe.yaml")
        return final


def test_train_or_reuse(tmp_path):
    ws = Workspace(tmp_path / "data", tmp_path / "runs", small=True)
    recipe = ws.recipe("sft")
    run = _FakeRun()
    assert train_or_reuse(run, recipe) == (tmp_path / "runs" / "sft" / "final", True)  # fresh run
    assert train_or_reuse(run, recipe) == (tmp_path / "runs" / "sft" / "final", False)  # same recipe: reused
    assert run.calls == [False]
    with pytest.raises(FileExistsError, match="max_steps"):  # another recipe: refused, naming the field
        train_or_reuse(run, ws.recipe("sft", steps=9))
    other = ws.recipe("grpo")
    (Path(other.output_dir) / "checkpoint-1").mkdir(parents=True)  # interrupted: resumed
    assert train_or_reuse(run, other)[1] is True and run.calls == [False, True]


def test_ensure_dataset_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="no dataset.json"):
        ensure_dataset(tmp_path / "x", SMALL_COUNTS)


def _sample(tube, width=100, height=50, fps=4.0, num_frames=40, **extras) -> Sample:
    return Sample(id="s", video=None, query="q", fps=fps, num_frames=num_frames, width=width, height=height,
                  tube=tube, dataset="synthetic", extras=extras)


def test_sample_statistics_and_summary():
    inside = _sample({4: [0, 0, 10, 10], 5: [90, 40, 100, 50]}, small=True, short=False, occluded=False)
    # a box past the right edge; no tags (real data)
    outside = _sample({8: [95, 0, 105, 10], 9: [0, 0, 10, 10], 10: [0, 0, 10, 10], 11: [0, 0, 10, 10]})
    stats = sample_statistics({"train": [inside], "test": [outside]})
    assert stats["inside_frame"].tolist() == [True, False]
    assert stats["tube_seconds"].tolist() == [0.5, 1.0]  # 2 frames and 4 frames at 4 fps
    assert stats["area_ratio"].tolist() == [pytest.approx(100 / 5000), pytest.approx(100 / 5000)]
    assert stats["start_fraction"].tolist() == [0.1, 0.2]
    assert stats["small"].tolist() == [True, None]
    summary = split_summary(stats).set_index("split")
    assert summary.loc["train", "% small"] == 100.0 and math.isnan(summary.loc["test", "% small"])
    assert summary["all inside frame"].tolist() == [True, False]


# a 4 fps, 8-frame clip of 448x224: kept frames 0, 2, 4, 6 on a 336x168 model frame (scale 0.75);
# the tube covers kept indices 1..3 with boxes that scale to whole pixels
HAND = _sample({2: [40, 40, 120, 100], 4: [80, 40, 160, 100], 6: [120, 40, 200, 100]}, width=448, height=224,
               num_frames=8)


def test_reward_examples_and_table_by_hand():
    answers, columns = reward_examples(HAND)
    assert columns["gt_span"] == [1, 3] and columns["frame_size"] == [336, 168]
    assert list(answers) == ["perfect", "sft target", "shifted", "missing box", "truncated"]
    table = reward_table(answers, columns)
    assert table.loc["perfect"].drop("parse error").tolist() == [1.0, 1.0, 1.0, 2.0, 0.0, 5.0]  # Eq. 10's maximum
    # one kept frame later: 1..3 -> 2..4, index 4 does not exist, so the span is 2..3: IoU 2 / 3
    assert table.loc["shifted", "R_t (Eq. 5)"] == pytest.approx(2 / 3, abs=1e-4)
    assert table.loc["missing box", "R_c (Eq. 4)"] == 0.0 and table.loc["missing box", "R_f (Eq. 3)"] == 1.0
    assert table.loc["truncated"].drop("parse error").tolist() == [0.0] * 6 and table.loc["truncated", "parse error"]
    sft = table.loc["sft target"]
    assert sft["R_k (Eq. 9)"] > 0 and sft["R (Eq. 10)"] == pytest.approx(3 + sft["R_s (Eq. 6-8)"] + 0.5 * sft["R_k (Eq. 9)"])


def test_describe_rewards_weights():
    assert describe_rewards("full", 0.5)["weight"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.5]  # Eq. 10
    table = describe_rewards("no_think_reward", 0.5)  # Table 6: R_k logged, weight 0
    assert table["weight"].tolist()[-1] == 0.0 and table["equation"].tolist()[-1] == "Eq. 9"
    assert describe_rewards("giou_only")["reward function"].tolist()[3] == "spatial_reward_giou"


def test_run_status_table_columns(tmp_path):
    from stvg_lab.analysis.grid import GridResults, RunResult

    grid = GridResults(tmp_path, [RunResult("full", 0, "abc", tmp_path, "cached", metrics={"pred": {"m_vIoU": 0.25}}),
                                  RunResult("l1_only", 1, "def", tmp_path, "failed", error="boom")])
    table = run_status_table(grid)
    assert table[["variant", "seed", "status", "error"]].values.tolist() == [
        ["full", 0, "cached", ""], ["l1_only", 1, "failed", "boom"]]
    assert table["pred m_vIoU"].iloc[0] == 0.25 and math.isnan(table["pred m_vIoU"].iloc[1])  # no metrics: NaN


# --------------------------------------------------------------------------- a small dataset for the fallbacks


@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return generate_synthetic(tmp_path_factory.mktemp("nbdata") / "data", 2, 0, 3, seed=0, progress=False, workers=1)


def test_evaluation_falls_back_to_evaluating_the_sft_checkpoint(tmp_path, small_data, monkeypatch):
    import stvg_lab.evaluate

    ws = Workspace.open(small_data, tmp_path / "runs", small=True)
    sft = ws.stage("sft") / "final"
    sft.mkdir(parents=True)
    (sft / "config.json").write_text("{}")
    calls = []

    def fake_evaluate(checkpoint, samples, out, **kwargs):
        calls.append((checkpoint, [s.id for s in samples], kwargs["max_new_tokens"]))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "per_sample.jsonl").write_text("")

    monkeypatch.setattr(stvg_lab.evaluate, "evaluate_model", fake_evaluate)
    assert ws.evaluation() == ws.stage("scale_eval")  # no 03 evaluation: made here from 02's checkpoint
    assert calls == [(sft, ["synth_test_00000", "synth_test_00001"], 48)]  # the small setting: 2 samples, 48 tokens
    assert ws.evaluation(ws.stage("scale_eval")) == ws.stage("scale_eval")  # a given folder is used as it is
    with pytest.raises(FileNotFoundError, match="per_sample.jsonl"):
        ws.evaluation(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        ws.sft_checkpoint(tmp_path)


def test_sft_checkpoint_shipped_only_on_its_benchmark(tmp_path, small_data):
    from dataclasses import replace

    from stvg_lab.data.synth import SynthConfig
    from stvg_lab.train.shipped import shipped_checkpoint

    assert Workspace.open(small_data, tmp_path / "runs").sft_checkpoint("shipped") == shipped_checkpoint()
    other = generate_synthetic(tmp_path / "other", 1, 0, 0, seed=0, progress=False, workers=1,
                               config=replace(SynthConfig(), n_distractors=(0, 0)))
    with pytest.raises(ValueError, match="n_distractors"):
        Workspace.open(other, tmp_path / "runs2").sft_checkpoint("shipped")


# --------------------------------------------------------------------------- notebooks, executed


@pytest.fixture(scope="session")
def nb_workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notebooks")


def _execute(name: str, ws: Path, **parameters) -> tuple[dict, list[dict]]:
    """Run notebook ``name`` in the small setting on workspace ``ws``; return its record and its code cells' outputs."""
    import papermill as pm

    record_path = ws / f"{name}.record.json"
    out = ws / f"{name}.out.ipynb"
    params = {"small": True, "record_path": str(record_path), "data_dir": str(ws / "data"), **parameters}
    pm.execute_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"), str(out), parameters=params, kernel_name="python3",
                        cwd=str(NOTEBOOK_DIR), progress_bar=False)
    outputs = [o for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    return json.loads(record_path.read_text()), outputs


def _bundles(outputs: list[dict]) -> list[set[str]]:
    return [set(o.get("data", {})) for o in outputs if o.get("data")]


@pytest.fixture(scope="session")
def nb01(nb_workspace):
    return _execute("01_data_prep", nb_workspace)


@pytest.fixture(scope="session")
def nb02(nb_workspace, nb01):
    return _execute("02_sft_baseline", nb_workspace, run_dir=str(nb_workspace / "runs"))


@pytest.fixture(scope="session")
def nb03(nb_workspace, nb02):
    # grpo_overrides reach the run's recipe (the metric recipe's loss; the reward variant stays the paper's)
    return _execute("03_grpo_training", nb_workspace, run_dir=str(nb_workspace / "runs"), grpo_overrides={"loss_type": "dapo"})


@pytest.fixture(scope="session")
def nb04(nb_workspace, nb02):
    return _execute("04_ablations", nb_workspace, run_dir=str(nb_workspace / "runs"))


@pytest.fixture(scope="session")
def nb05(nb_workspace, nb03):
    return _execute("05_object_scale_analysis", nb_workspace, run_dir=str(nb_workspace / "runs"))


def _in_unit_interval(scores: dict) -> bool:
    return all(0.0 <= scores[m] <= 1.0 for m in METRICS)


@pytest.mark.notebook
def test_01_data_prep_records_the_dataset(nb01, nb_workspace):
    rec, outputs = nb01
    assert rec["counts"] == SMALL_COUNTS
    data = nb_workspace / "data"
    samples = {split: load_synthetic(data, split) for split in SPLITS}
    # every tube inside its frame, checked here independently of the notebook's own statistics
    inside = all(0 <= b[0] < b[2] <= s.width and 0 <= b[1] < b[3] <= s.height
                 for split in SPLITS for s in samples[split] for b in s.tube.values())
    assert rec["all_inside_frame"] is inside is True
    assert [row["samples"] for row in rec["summary"]] == [SMALL_COUNTS[s] for s in SPLITS]
    assert rec["fixture_samples"] == {"hcstvg-v2": 3, "vidstg": 6}  # tests/fixtures/formats/README.md's tables
    assert rec["target"]["consistent"] is True and rec["target"]["frames"] == 8 and rec["target"]["size"] == [112, 112]
    assert rec["target"]["span"] == [1, 3]  # synth_train_00001: original frames 3..15 at 8 fps -> kept 1..3 (frames 4, 8, 12)
    bundles = _bundles(outputs)
    assert sum("image/png" in b for b in bundles) >= 3 + 1  # n_show frame strips + the statistics figure
    assert "image/png" in bundles[-1]  # ends with the statistics figure


@pytest.mark.notebook
def test_02_sft_baseline_trains_and_evaluates(nb02, nb_workspace):
    rec, outputs = nb02
    losses = rec["losses"]
    assert rec["trained"] is True and rec["loss_steps"] == list(range(1, rec["max_steps"] + 1)) and rec["max_steps"] == 4
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert rec["n_eval"] == 2
    for tube in ("pred", "think"):
        assert _in_unit_interval(rec[tube])
    assert set(rec["baselines"]) == set(BASELINES) and all(_in_unit_interval(b) for b in rec["baselines"].values())
    assert 0.0 <= rec["parse_failure_rate"] <= 1.0
    written = json.loads((nb_workspace / "runs" / "sft" / "eval" / "metrics.json").read_text())
    assert written["pred"] == rec["pred"]
    assert (nb_workspace / "runs" / "sft" / "final" / "config.json").is_file()
    last = outputs[-1]["data"]
    assert "SFT (ours)" in "".join(last["text/markdown"])  # ends with the metrics table


@pytest.mark.notebook
def test_03_grpo_training_logs_every_reward(nb03, nb_workspace):
    rec, outputs = nb03
    recipe = load_recipe(nb_workspace / "runs" / "grpo" / "recipe.yaml")
    assert recipe.loss_type == "dapo" and recipe.reward_variant == "full"  # grpo_overrides applied, the rest untouched
    assert rec["perfect_score"]["total"] == 5.0 and rec["perfect_score"]["error"] is None
    table = rec["reward_table"]
    assert table["perfect"]["R (Eq. 10)"] == 5.0
    # one frame later: L-1 frames shared of L+1 (of L when the span already ends on the last shown frame)
    s, e = rec["gt_span"]
    length = e - s + 1
    assert table["shifted"]["R_t (Eq. 5)"] == pytest.approx((length - 1) / (length + 1), abs=1e-4) or \
        table["shifted"]["R_t (Eq. 5)"] == pytest.approx((length - 1) / length, abs=1e-4)
    assert table["missing box"]["R_c (Eq. 4)"] == 0.0
    assert table["truncated"]["R (Eq. 10)"] == 0.0 and table["truncated"]["parse error"]
    steps = list(range(1, rec["max_steps"] + 1))
    assert rec["reward_keys"] == [f"rewards/{n}/mean" for n in REWARD_NAMES]
    for key in rec["reward_keys"]:
        assert rec["reward_steps"][key] == steps  # every component logged at every step
        assert all(math.isfinite(v) for v in rec["reward_means"][key])
    assert len(rec["kl"]) == len(steps) and all(math.isfinite(v) for v in rec["kl"])
    assert all(0.0 <= v <= 1.0 for v in rec["frac_reward_zero_std"])
    assert rec["n_eval"] == 2 and _in_unit_interval(rec["sft_pred"]) and _in_unit_interval(rec["grpo_pred"])
    bundles = _bundles(outputs)
    assert "image/png" in bundles[-3] and "text/markdown" in bundles[-2]  # the curves, then the SFT vs GRPO table
    assert "GRPO (ours)" in "".join(outputs[-2]["data"]["text/markdown"])
    # then the reward of the held-out answers, term by term, Eq. 10's sum holding for each model
    assert "| R (Eq. 10) |" in "".join(outputs[-1]["data"]["text/markdown"])
    for name in ("sft_reward", "grpo_reward"):
        r = rec[name]
        assert r["total"] == pytest.approx(r["format"] + r["consistency"] + r["temporal"] + r["spatial"] + r["lambda_k"] * r["think"])


@pytest.mark.notebook
def test_04_ablations_grid_is_complete_and_cached(nb04, nb_workspace):
    rec, outputs = nb04
    assert rec["variants"] == list(SMALL_GRID) and rec["seeds"] == [0]
    assert rec["first_status"] == ["trained"] * len(SMALL_GRID)  # a fresh grid trains every run
    assert rec["second_status"] == ["cached"] * len(SMALL_GRID)  # called again: nothing is trained or evaluated
    assert rec["failed"] == 0
    # 4 metrics per tube: think and pred, except the no-think variant (pred only)
    assert len(rec["rows"]) == sum(4 * (1 if v == "no_think_bbox" else 2) for v in SMALL_GRID)
    assert all(0.0 <= r["value"] <= 1.0 for r in rec["rows"])
    assert {r["variant"] for r in rec["rows"]} == set(SMALL_GRID)
    assert len(list((nb_workspace / "runs" / "grid" / "runs").iterdir())) == len(SMALL_GRID)
    assert set(rec["tables"]) == {"tab5", "tab6", "tab7", "tab8"}
    assert "RFT w/o think bbox | 1 |" in rec["tables"]["tab5"] and "λk = 0.2 | 1 |" in rec["tables"]["tab8"]
    assert sum("text/markdown" in b for b in _bundles(outputs)[-5:]) == 5  # Tables 5-8, then the paired differences
    assert rec["differences"] == sorted(f"full - {v}" for v in SMALL_GRID if v != "full")
    last = "".join([o for o in outputs if o.get("data")][-1]["data"]["text/markdown"])
    assert "| full - giou_only | m_vIoU (pred) |" in last


@pytest.mark.notebook
def test_05_object_scale_bins_cover_the_samples(nb05, nb03, nb_workspace):
    rec, outputs = nb05
    assert rec["source"] == str(nb_workspace / "runs" / "grpo" / "eval")  # 03's evaluation
    assert rec["n_rows"] == nb03[0]["n_eval"] == sum(rec["n"])  # every sample in exactly one bin
    assert len(rec["bins"]) == len(AREA_BINS) and rec["n_think"] == rec["n"]
    assert "image/png" in _bundles(outputs)[-1]  # ends with the Fig. 4 plot
