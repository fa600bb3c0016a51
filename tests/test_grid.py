"""The ablation grid machinery (stvg_lab.analysis.grid) on trivially small grids with fake train/eval/SFT.

The fakes record every call and write the folders a real trainer would (``final/config.json``),
so these tests check planning, caching, atomic completion and retry without any training.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from stvg_lab.analysis.grid import (
    PAPER_GRID,
    GridSpec,
    load_rows,
    plan_grid,
    recipe_hash,
    run_grid,
    variant_overrides,
)
from stvg_lab.analysis.tables import ablation_table
from stvg_lab.analysis.workers import threads_per_worker
from stvg_lab.train.recipe import load_recipe


class Fakes:
    """Fake sft/train/eval functions that record their calls; ``crash_train``/``crash_eval`` hold (variant, seed) to fail once."""

    def __init__(self) -> None:
        self.sft_calls: list[str] = []
        self.train_calls: list[tuple[str, int]] = []
        self.eval_calls: list[tuple[str, int]] = []
        self.train_recipes = []
        self.crash_train: set[tuple[str, int]] = set()
        self.crash_eval: set[tuple[str, int]] = set()

    @staticmethod
    def _key(recipe) -> tuple[str, int]:
        # the grid names runs "<grid>-<variant>-s<seed>"
        variant = recipe.name.split("-", 1)[1].rsplit("-s", 1)[0]
        return variant, recipe.seed

    @staticmethod
    def _final(recipe) -> Path:
        final = Path(recipe.output_dir) / "final"
        final.mkdir(parents=True, exist_ok=True)
        (final / "config.json").write_text("{}")
        return final

    def sft(self, recipe) -> Path:
        self.sft_calls.append(recipe.answer_format)
        return self._final(recipe)

    def train(self, recipe) -> Path:
        key = self._key(recipe)
        self.train_calls.append(key)
        self.train_recipes.append(recipe)
        if key in self.crash_train:
            self.crash_train.discard(key)
            Path(recipe.output_dir).mkdir(parents=True, exist_ok=True)
            raise RuntimeError(f"simulated crash while training {key}")
        return self._final(recipe)

    def eval(self, checkpoint, recipe, out_dir) -> dict:
        key = self._key(recipe)
        self.eval_calls.append(key)
        if key in self.crash_eval:
            self.crash_eval.discard(key)
            raise RuntimeError(f"simulated crash while evaluating {key}")
        out_dir.mkdir(parents=True, exist_ok=True)
        v = 0.1 + 0.1 * recipe.seed + recipe.lambda_k / 10  # a value the test can recompute
        scores = {"m_tIoU": v, "m_vIoU": v / 2, "vIoU@0.3": v, "vIoU@0.5": v / 4, "n": 3}
        return {"pred": scores, "think": None if recipe.answer_format == "no_think" else dict(scores), "n": 3}


@pytest.fixture
def base(tmp_path):
    return load_recipe("tiny_cpu", data=str(tmp_path / "data"), max_steps=2, answer_format="paper")


def _spec(base, **kw) -> GridSpec:
    return GridSpec(variants=kw.pop("variants", ["full", "no_think_bbox"]), seeds=kw.pop("seeds", [0, 1]), base_recipe=base, **kw)


def _run(spec, out, fakes, **kw):
    return run_grid(spec, out, train_fn=fakes.train, eval_fn=fakes.eval, sft_fn=fakes.sft, **kw)


@pytest.mark.parametrize(
    "variant, base_format, expected",
    [
        ("full", "paper", {"reward_variant": "full"}),
        # Table 5: the no-think counterpart of the base format, and its reward variant
        ("no_think_bbox", "paper", {"reward_variant": "no_think_bbox", "answer_format": "no_think"}),
        ("no_think_bbox", "compact", {"reward_variant": "no_think_bbox", "answer_format": "compact_no_think"}),
        ("no_think_reward", "paper", {"reward_variant": "no_think_reward"}),
        ("giou_only", "paper", {"reward_variant": "giou_only"}),
        ("l1_only", "paper", {"reward_variant": "l1_only"}),
        ("overlap_penalty", "paper", {"reward_variant": "overlap_penalty"}),
        # Table 8: any number after "lambda_k="; 0 is allowed
        ("lambda_k=0", "paper", {"reward_variant": "full", "lambda_k": 0.0}),
        ("lambda_k=0.2", "compact", {"reward_variant": "full", "lambda_k": 0.2}),
    ],
)
def test_variant_overrides(variant, base_format, expected):
    assert variant_overrides(variant, base_format) == expected


@pytest.mark.parametrize(
    "variant, base_format",
    [
        ("bogus", "paper"),  # unknown name
        ("lambda_k=abc", "paper"),  # not a number
        ("full", "no_think"),  # a think variant on a no-think base format cannot work
    ],
)
def test_variant_overrides_rejects(variant, base_format):
    with pytest.raises(ValueError):
        variant_overrides(variant, base_format)


def test_paper_grid_variants_all_resolve(base, tmp_path):
    planned = plan_grid(GridSpec(list(PAPER_GRID), [0], base), tmp_path)
    assert [p.variant for p in planned] == list(PAPER_GRID)
    by_variant = {p.variant: p for p in planned}
    # λk = 0.5 is the paper recipe's value: the same run as "full"
    assert by_variant["lambda_k=0.5"].run_hash == by_variant["full"].run_hash
    assert by_variant["no_think_bbox"].sft_format == {"paper": "no_think", "compact": "compact_no_think"}[base.answer_format]


def test_recipe_hash_ignores_bookkeeping_fields(base):
    h = recipe_hash(base)
    assert recipe_hash(base.replace(output_dir="elsewhere", name="other", logging_steps=7)) == h  # volatile fields
    assert recipe_hash(base.replace(learning_rate=2e-3)) != h  # a field that changes training
    assert recipe_hash(base, init_identity="sft:abc") != recipe_hash(base, init_identity="sft:def")


def test_grid_trains_evaluates_and_collects_every_run(base, tmp_path):
    fakes = Fakes()
    results = _run(_spec(base), tmp_path / "grid", fakes)

    assert sorted(fakes.sft_calls) == ["no_think", "paper"]  # one shared SFT per answer format
    assert sorted(fakes.train_calls) == [("full", 0), ("full", 1), ("no_think_bbox", 0), ("no_think_bbox", 1)]
    assert sorted(fakes.eval_calls) == sorted(fakes.train_calls)
    for recipe in fakes.train_recipes:
        fmt = "no_think" if recipe.reward_variant == "no_think_bbox" else "paper"
        assert recipe.answer_format == fmt
        assert Path(recipe.init_from) == results.sft[fmt]  # GRPO starts from that format's SFT checkpoint
    assert {r.status for r in results.runs} == {"trained"}
    for r in results.runs:
        done = json.loads((r.run_dir / "metrics.json").read_text())
        assert done["recipe_hash"] == r.run_hash == r.run_dir.name
        assert (r.run_dir / "recipe.yaml").is_file()

    rows = results.rows()
    # full: 2 seeds × (think, pred) × 4 metrics; no_think_bbox: 2 seeds × pred × 4
    assert len(rows) == 16 + 8
    assert {(r["variant"], r["tube"]) for r in rows} == {("full", "think"), ("full", "pred"), ("no_think_bbox", "pred")}
    full_s1 = [r for r in rows if r["variant"] == "full" and r["seed"] == 1 and r["metric"] == "m_tIoU" and r["tube"] == "pred"]
    assert full_s1[0]["value"] == pytest.approx(0.1 + 0.1 + 0.05)
    assert load_rows(tmp_path / "grid") == rows  # results.jsonl holds the same tidy table
    assert len(results.to_frame()) == len(rows)


def test_rerun_reuses_everything(base, tmp_path):
    first = _run(_spec(base), tmp_path / "grid", Fakes())
    fakes = Fakes()
    again = _run(_spec(base), tmp_path / "grid", fakes)
    assert fakes.sft_calls == fakes.train_calls == fakes.eval_calls == []
    assert {r.status for r in again.runs} == {"cached"}
    assert again.rows() == first.rows()


def test_moved_grid_folder_is_still_cached(base, tmp_path):
    _run(_spec(base), tmp_path / "grid", Fakes())
    shutil.move(tmp_path / "grid", tmp_path / "moved")
    fakes = Fakes()
    again = _run(_spec(base), tmp_path / "moved", fakes)
    assert fakes.train_calls == fakes.eval_calls == []
    assert all(r.checkpoint.is_dir() for r in again.runs)  # checkpoints stored relative to the run dir


def test_changing_one_variant_recipe_retrains_only_that_variant(base, tmp_path):
    _run(_spec(base), tmp_path / "grid", Fakes())
    fakes = Fakes()
    results = _run(_spec(base, extra_overrides={"no_think_bbox": {"learning_rate": 5e-4}}), tmp_path / "grid", fakes)
    assert fakes.sft_calls == []  # SFT recipes unchanged
    assert sorted(fakes.train_calls) == [("no_think_bbox", 0), ("no_think_bbox", 1)]
    assert sorted(fakes.eval_calls) == sorted(fakes.train_calls)
    assert {r.variant: r.status for r in results.runs} == {"full": "cached", "no_think_bbox": "trained"}


def test_changing_eval_settings_reevaluates_without_training(base, tmp_path):
    _run(_spec(base, variants=["full"], seeds=[0]), tmp_path / "grid", Fakes())
    fakes = Fakes()
    results = _run(_spec(base, variants=["full"], seeds=[0], max_eval_samples=5), tmp_path / "grid", fakes)
    assert fakes.train_calls == []
    assert fakes.eval_calls == [("full", 0)]
    assert results.runs[0].status == "evaluated"


def test_a_new_scoring_version_reevaluates_without_training(base, tmp_path, monkeypatch):
    # runs scored before the evaluation scored more (e.g. the pred-span control) are scored again
    import stvg_lab.analysis.grid as grid_module

    _run(_spec(base, variants=["full"], seeds=[0]), tmp_path / "grid", Fakes())
    monkeypatch.setattr(grid_module, "SCORING_VERSION", grid_module.SCORING_VERSION + 1)
    fakes = Fakes()
    results = _run(_spec(base, variants=["full"], seeds=[0]), tmp_path / "grid", fakes)
    assert fakes.train_calls == [] and fakes.eval_calls == [("full", 0)]
    assert results.runs[0].status == "evaluated"


def test_crash_in_training_leaves_no_done_marker_and_is_retried(base, tmp_path):
    fakes = Fakes()
    fakes.crash_train.add(("full", 1))
    with pytest.raises(RuntimeError, match="simulated crash"):
        _run(_spec(base), tmp_path / "grid", fakes)
    planned = {(p.variant, p.seed): p.run_hash for p in plan_grid(_spec(base), tmp_path / "grid")}
    runs = tmp_path / "grid" / "runs"
    assert (runs / planned[("full", 0)] / "metrics.json").is_file()  # finished before the crash
    assert (runs / planned[("full", 1)]).is_dir()
    assert not (runs / planned[("full", 1)] / "metrics.json").exists()  # no "done" marker
    assert not (runs / planned[("full", 1)] / "checkpoint.json").exists()
    assert not list(runs.glob("*/.*.tmp"))  # no half-written marker left behind

    retry = Fakes()
    results = _run(_spec(base), tmp_path / "grid", retry)
    # the crashed run and the ones never reached run; the finished one is reused
    assert retry.train_calls == [("full", 1), ("no_think_bbox", 0), ("no_think_bbox", 1)]
    assert results.run("full", 0).status == "cached"
    assert not results.failed


def test_crash_in_evaluation_retries_evaluation_only(base, tmp_path):
    fakes = Fakes()
    fakes.crash_eval.add(("full", 0))
    with pytest.raises(RuntimeError):
        _run(_spec(base, variants=["full"], seeds=[0]), tmp_path / "grid", fakes)
    retry = Fakes()
    results = _run(_spec(base, variants=["full"], seeds=[0]), tmp_path / "grid", retry)
    assert retry.train_calls == []  # checkpoint.json recorded the finished training
    assert retry.eval_calls == [("full", 0)]
    assert results.runs[0].status == "evaluated"


def test_on_error_continue_records_failures(base, tmp_path):
    fakes = Fakes()
    fakes.crash_train.add(("full", 0))
    results = _run(_spec(base), tmp_path / "grid", fakes, on_error="continue")
    assert [(r.variant, r.seed) for r in results.failed] == [("full", 0)]
    assert "simulated crash" in results.failed[0].error
    assert len(results.rows()) == 8 + 8  # full seed 1 (think + pred) and no_think_bbox × 2 (pred)


def test_only_cached_runs_nothing(base, tmp_path):
    fakes = Fakes()
    results = _run(_spec(base), tmp_path / "grid", fakes, only_cached=True)
    assert fakes.sft_calls == fakes.train_calls == fakes.eval_calls == []
    assert {r.status for r in results.runs} == {"missing"}
    assert results.rows() == []


def test_variants_with_the_same_recipe_share_one_run(base, tmp_path):
    fakes = Fakes()
    results = _run(_spec(base, variants=["full", "lambda_k=0.5"], seeds=[0]), tmp_path / "grid", fakes)
    assert fakes.train_calls == [("full", 0)]
    assert results.run("full", 0).run_dir == results.run("lambda_k=0.5", 0).run_dir
    assert {r["variant"] for r in results.rows()} == {"full", "lambda_k=0.5"}


def test_given_sft_checkpoint_is_used_not_trained(base, tmp_path):
    given = tmp_path / "my_sft" / "final"
    given.mkdir(parents=True)
    fakes = Fakes()
    _run(_spec(base, variants=["full"], seeds=[0], sft_checkpoints={"paper": given}), tmp_path / "grid", fakes)
    assert fakes.sft_calls == []
    assert Path(fakes.train_recipes[0].init_from) == given


def test_new_weights_at_a_given_sft_path_train_new_runs(base, tmp_path):
    # the shipped SFT is replaced in place; runs trained from the old weights must not be served again
    given = tmp_path / "my_sft" / "final"
    given.mkdir(parents=True)
    (given / "model.safetensors").write_bytes(b"old weights")
    spec = _spec(base, variants=["full"], seeds=[0], sft_checkpoints={"paper": given})
    fakes = Fakes()
    first = _run(spec, tmp_path / "grid", fakes).run("full", 0).run_dir
    _run(spec, tmp_path / "grid", fakes)
    assert fakes.train_calls == [("full", 0)]  # same weights: cached
    (given / "model.safetensors").write_bytes(b"new weights")
    second = _run(spec, tmp_path / "grid", fakes).run("full", 0).run_dir
    assert fakes.train_calls == [("full", 0), ("full", 0)] and second != first


def test_ablation_table_from_grid_results(base, tmp_path):
    results = _run(_spec(base), tmp_path / "grid", Fakes())
    md = ablation_table(results, "tab5")
    # full: m_tIoU over seeds 0.15 and 0.25 -> 20.0 ± 7.1 (sample std of 15, 25)
    assert "| RFT w/ think bbox (full STVG-o1) | 2 | 20.0 ± 7.1 |" in md
    assert ablation_table(tmp_path / "grid", "tab5") == md  # the same from results.jsonl


def _train_in_worker(recipe) -> Path:
    """A train_fn for worker processes (they cannot append to a parent's Fakes): records its process in final/ran.json.

    ``FAKE_CRASH`` (inherited by the spawned workers) names one "<variant>-s<seed>" that raises.
    """
    import torch

    variant, seed = Fakes._key(recipe)
    print(f"training {variant} seed {seed}")  # the worker's stdout: lands in the run's worker.log
    if os.environ.get("FAKE_CRASH") == f"{variant}-s{seed}":
        raise RuntimeError(f"simulated crash while training {variant} seed {seed}")
    final = Fakes._final(recipe)
    (final / "ran.json").write_text(json.dumps({"pid": os.getpid(), "threads": torch.get_num_threads()}))
    return final


def test_workers_run_the_grid_in_other_processes_with_the_same_results(base, tmp_path):
    fakes = Fakes()
    results = run_grid(_spec(base), tmp_path / "grid", train_fn=_train_in_worker, eval_fn=Fakes().eval, sft_fn=fakes.sft, workers=2)
    assert sorted(fakes.sft_calls) == ["no_think", "paper"]  # the SFTs ran here, once each, before the runs fanned out
    assert {r.status for r in results.runs} == {"trained"}
    for r in results.runs:
        ran = json.loads((r.checkpoint / "ran.json").read_text())
        assert ran["pid"] != os.getpid() and ran["threads"] == threads_per_worker(2)
        assert f"training {r.variant} seed {r.seed}" in (r.run_dir / "worker.log").read_text()
        assert json.loads((r.run_dir / "metrics.json").read_text())["recipe_hash"] == r.run_hash
    assert [(r.variant, r.seed) for r in results.runs] == [("full", 0), ("full", 1), ("no_think_bbox", 0), ("no_think_bbox", 1)]
    one_by_one = _run(_spec(base), tmp_path / "sequential", Fakes())
    assert results.rows() == one_by_one.rows()
    again = run_grid(_spec(base), tmp_path / "grid", train_fn=_train_in_worker, eval_fn=Fakes().eval, sft_fn=fakes.sft, workers=2)
    assert {r.status for r in again.runs} == {"cached"}


def test_a_crash_in_a_worker_is_recorded_or_raised(base, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_CRASH", "full-s1")
    kw = dict(train_fn=_train_in_worker, eval_fn=Fakes().eval, workers=2)
    results = run_grid(_spec(base, variants=["full"]), tmp_path / "grid", sft_fn=Fakes().sft, on_error="continue", **kw)
    assert [(r.variant, r.seed) for r in results.failed] == [("full", 1)]
    assert "simulated crash" in results.failed[0].error
    assert results.run("full", 0).status == "trained"
    assert not (results.run("full", 1).run_dir / "metrics.json").exists()
    with pytest.raises(RuntimeError, match="simulated crash while training full seed 1"):  # the worker's exception, re-raised
        run_grid(_spec(base, variants=["full"]), tmp_path / "grid2", sft_fn=Fakes().sft, **kw)


def test_workers_refuse_functions_that_cannot_reach_a_worker(base, tmp_path):
    fakes = Fakes()
    with pytest.raises(TypeError, match="train_fn cannot be sent to a worker process"):
        run_grid(_spec(base), tmp_path / "grid", train_fn=lambda recipe: Path(), eval_fn=fakes.eval, sft_fn=fakes.sft, workers=2)
    assert fakes.sft_calls == [] and not (tmp_path / "grid").exists()  # refused before anything ran
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        run_grid(_spec(base), tmp_path / "grid", train_fn=fakes.train, eval_fn=fakes.eval, sft_fn=fakes.sft, workers=0)
