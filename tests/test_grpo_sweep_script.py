"""bench/grpo_sweep.py: span statistics, the moved-span share and the table, on literal rows (no training)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
_spec = importlib.util.spec_from_file_location("bench_grpo_sweep", BENCH / "grpo_sweep.py")
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


@pytest.mark.parametrize("rows, want", [
    # one clip: span 2-5 against gt 3-5 -> length 4, starts one frame early, ends on time
    ([{"gt_span": [3, 5], "pred_span": [2, 5]}], {"n": 1, "pred_len": 4, "gt_len": 3, "start_err": -1, "end_err": 0}),
    # an unparsed answer (pred_span None) is left out of every mean
    ([{"gt_span": [0, 7], "pred_span": [1, 6]}, {"gt_span": [0, 7], "pred_span": None}, {"gt_span": [2, 3], "pred_span": [2, 5]}],
     {"n": 2, "pred_len": 5, "gt_len": 5, "start_err": 0.5, "end_err": 0.5}),
    ([{"gt_span": [0, 7], "pred_span": None}], {"n": 0}),
])
def test_span_stats(rows, want):
    assert sweep.span_stats(rows) == pytest.approx(want)


@pytest.mark.parametrize("start, run, want", [
    ([{"id": "a", "pred_span": [1, 2]}, {"id": "b", "pred_span": [0, 7]}], [{"id": "a", "pred_span": [1, 2]}, {"id": "b", "pred_span": [0, 6]}], 0.5),
    ([{"id": "a", "pred_span": None}], [{"id": "a", "pred_span": [1, 2]}], 1.0),  # now parses: it moved
    ([{"id": "a", "pred_span": [1, 2]}, {"id": "b", "pred_span": [3, 4]}], [{"id": "b", "pred_span": [3, 4]}], 0.0),  # only common clips
])
def test_spans_changed(start, run, want):
    assert sweep.spans_changed(start, run) == want


def test_spans_changed_without_common_clips_says_so():
    with pytest.raises(ValueError, match="share no evaluated clip"):
        sweep.spans_changed([{"id": "a"}], [{"id": "b"}])


def _score(tiou: float, length: float) -> dict:
    return {"n_test": 100, "parse_rate": 1.0, "think_m_vIoU": 0.1, "spans": {"pred_len": length},
            **{f"pred_{m}": tiou if m == "m_tIoU" else 0.05 for m in sweep.METRICS},
            "baselines": {"whole video + mean box": dict.fromkeys(sweep.METRICS, 0.5)}}


def _write(root: Path, name: str, seed: int, tiou: float, sets: list[str], temperature: float = 1.0) -> None:
    out = root / name / f"seed{seed}"
    out.mkdir(parents=True)
    sampled = {**_score(tiou / 2, 4.0), "parse_rate": 0.8, "temperature": temperature}
    start = {**_score(0.6, 5.0), "sampled": {**_score(0.2 if temperature == 1.0 else 0.3, 5.0), "parse_rate": 0.5, "temperature": temperature}}
    result = {**_score(tiou, 4.0), "name": name, "seed": seed, "set": sets, "start": start, "sampled": sampled, "spans_changed": 0.25,
              "reward": {"first": 0.2, "last": 0.8}, "terms": {"temporal": [0.3, 0.4], "spatial": [-0.5, -0.3]}}
    (out / "result.json").write_text(json.dumps(result))


def test_table_rows_are_mean_and_sample_std_per_variant(tmp_path):
    _write(tmp_path, "base", 0, 0.5, [])
    _write(tmp_path, "base", 1, 0.7, [])
    _write(tmp_path, "a_t0.7", 0, 0.6, ["temperature=0.7"], temperature=0.7)
    lines = sweep.table(tmp_path).splitlines()
    start = next(line for line in lines if line.startswith("| start"))
    assert start.split(" | ")[2:5] == ["100", "60.0", "5.0"]
    # the start checkpoint's sampled answers at temperature 1.0, whichever variant came first
    assert "| 10.0 | (t 1) 50 | 20.0 | 5.0 | 5.00 |" in start
    base = next(line for line in lines if line.startswith("| base"))
    cells = base.split(" | ")
    assert cells[0] == "| base (tiny_cpu_grpo)" and cells[1] == "0,1" and cells[3] == "60.0 ± 14.1"
    assert "| 80 ± 0 | 30.0 ± 7.1 | 5.0 ± 0.0 |" in base  # sampled answers: parsed, m_tIoU (half the greedy), m_vIoU
    assert "0.20 ± 0.00 → 0.80 ± 0.00" in base and base.endswith("| 0.40 ± 0.00 | -0.30 ± 0.00 | – |")  # no KL logged: "–"
    assert any(line.startswith("| a_t0.7 (`temperature=0.7`) | 0 | 100 | 60.0 |") for line in lines)
    assert any(line.startswith("| baseline: whole video + mean box | – | – | 50.0 | 50.0 | 50.0 |") for line in lines)
    assert any(line.startswith("(no swap control in some results") for line in lines)  # these results predate it
    assert lines[-5].startswith("(no box counts in some results")
    assert lines[-3] == "(no per-sample scores in some runs: no m_vIoU by n_distractors)"
    assert lines[-1] == "Made on: not recorded (3 runs)."  # no run folder wrote environment.jsonl


def test_span_control_column_sits_beside_the_models_metrics(tmp_path):
    # the greedy pred spans with the mean box: the model's boxes ground by as much as m_vIoU exceeds it
    for seed, v in ((0, 0.04), (1, 0.06)):
        _write(tmp_path, "base", seed, 0.5, [])
        path = tmp_path / "base" / f"seed{seed}" / "result.json"
        r = json.loads(path.read_text())
        r["span_control"] = dict.fromkeys(sweep.METRICS, v)
        r["start"]["span_control"] = dict.fromkeys(sweep.METRICS, 0.03)
        path.write_text(json.dumps(r))
    lines = sweep.table(tmp_path).splitlines()
    header = next(line for line in lines if line.startswith("| variant | seeds"))
    col = header.split(" | ").index("pred spans + mean box: m_vIoU")
    assert next(line for line in lines if line.startswith("| start")).split(" | ")[col] == "3.0"
    assert next(line for line in lines if line.startswith("| base")).split(" | ")[col] == "5.0 ± 1.4"
    assert next(line for line in lines if line.startswith("| baseline:")).split(" | ")[col] == "–"


def _env(capability: str, gpus: list[str], torch: str = "2.13.0+cpu") -> str:
    return json.dumps({"cpu_capability": capability, "gpus": gpus, "torch_threads": 1,
                       "packages": {"torch": torch, "transformers": "5.23.0", "trl": "1.16.0"}})


def test_made_on_counts_each_environment_by_its_first_start(tmp_path):
    runs = [tmp_path / f"r{k}" for k in range(4)]
    for run in runs:
        run.mkdir()
    (runs[0] / "environment.jsonl").write_text(_env("AVX512", []) + "\n" + _env("AVX2", []) + "\n")  # resumed elsewhere
    (runs[1] / "environment.jsonl").write_text(_env("AVX512", []) + "\n")
    (runs[2] / "environment.jsonl").write_text(_env("AVX2", ["NVIDIA H200"], torch="2.14.1") + "\n")
    assert sweep.made_on(runs) == (
        "Made on: AVX512, torch 2.13.0+cpu, transformers 5.23.0, trl 1.16.0, 1 thread(s) (2 runs); "
        "AVX2, NVIDIA H200, torch 2.14.1, transformers 5.23.0, trl 1.16.0, 1 thread(s) (1 run); not recorded (1 run).")


def _swap(own: float, swapped: float, distinct: int) -> dict:
    box = {"own_centre": own, "swapped_centre": swapped, "constant_centre": 0.7, "distinct": distinct,
           "own_iou": own / 2, "swapped_iou": swapped / 2, "constant_iou": 0.4}
    return {"span": {"own": own, "swapped": swapped}, "think": box, "pred": box}


def _two_seeds(root: Path, key: str, per_seed: list[dict], start: dict) -> None:
    """``base`` at seeds 0 and 1, each result (and its start row) given ``key``."""
    for seed, value in enumerate(per_seed):
        _write(root, "base", seed, 0.5 + 0.2 * seed, [])
        path = root / "base" / f"seed{seed}" / "result.json"
        result = json.loads(path.read_text())
        result[key], result["start"][key] = value, start
        path.write_text(json.dumps(result))


def test_swap_table_rows(tmp_path):
    _two_seeds(tmp_path, "swap", [_swap(0.6, 0.5, 1), _swap(0.8, 0.5, 1)], _swap(0.5, 0.3, 12))
    lines = sweep.table(tmp_path).splitlines()
    assert "| start (SFT) | 50.0 | 30.0 | 50.0 | 30.0 | 70.0 | 12 | 50.0 | 30.0 | 25.0 | 15.0 | 40.0 |" in lines
    assert ("| base | 70.0 ± 14.1 | 50.0 ± 0.0 | 70.0 ± 14.1 | 50.0 ± 0.0 | 70.0 ± 0.0 | 1 ± 0 | 70.0 ± 14.1 | 50.0 ± 0.0 "
            "| 35.0 ± 7.1 | 25.0 ± 0.0 | 40.0 ± 0.0 |") in lines


def test_table_without_results_says_where(tmp_path):
    with pytest.raises(SystemExit, match=str(tmp_path)):
        sweep.table(tmp_path)


def _counts(consistent: float, long: float, extra: float) -> dict:
    lists = {"extra": extra, "short": 0.0, "exact": 1.0 - long, "long": long}
    return {"n": 100, "parsed": 1.0, "consistent": consistent, "think": lists, "pred": lists}


def test_counts_table_rows(tmp_path):
    _two_seeds(tmp_path, "counts", [_counts(1 - long, long, 2 * long) for long in (0.6, 0.8)], _counts(0.4, 0.2, -0.1))
    lines = sweep.table(tmp_path).splitlines()
    assert "| start (SFT) | 40 | 0 | 80 | 20 | -0.10 | -0.10 |" in lines
    assert "| base | 30 ± 14 | 0 ± 0 | 30 ± 14 | 70 ± 14 | 1.40 ± 0.28 | 1.40 ± 0.28 |" in lines


def _per_sample(folder: Path, vious: list[float], distractors: list[int | None]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"s{i}", "tIoU_pred": 0.5, "vIoU_pred": v, "tags": {} if d is None else {"n_distractors": d}}
            for i, (v, d) in enumerate(zip(vious, distractors))]
    (folder / "per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_tag_table_rows(tmp_path):
    _two_seeds(tmp_path, "counts", [_counts(0.5, 0.2, 0.0)] * 2, _counts(0.5, 0.2, 0.0))
    tags = [0, 0, 1, 2]
    _per_sample(tmp_path / "start" / "eval", [0.4, 0.2, 0.1, 0.0], tags)
    _per_sample(tmp_path / "base" / "seed0" / "eval", [0.4, 0.4, 0.2, 0.1], tags)
    _per_sample(tmp_path / "base" / "seed1" / "eval", [0.2, 0.2, 0.0, None], tags)  # None: no prediction, scored 0
    lines = sweep.table(tmp_path).splitlines()
    assert "pred m_vIoU by the clip's `n_distractors` (`stvg_lab.analysis.tags`; test clips per value: 0: 2, 1: 1, 2: 1), %:" in lines
    assert "| variant | n_distractors = 0 | n_distractors = 1 | n_distractors = 2 |" in lines
    assert "| start (SFT) | 30.0 | 10.0 | 0.0 |" in lines
    assert "| base | 30.0 ± 14.1 | 10.0 ± 14.1 | 5.0 ± 7.1 |" in lines
    # clips without the tag (another dataset): said, not a table of None
    for folder in (tmp_path / "start" / "eval", *(tmp_path / "base" / f"seed{k}" / "eval" for k in (0, 1))):
        _per_sample(folder, [0.1] * 4, [None] * 4)
    assert sweep.table(tmp_path).splitlines()[-3] == "(the test clips carry no 'n_distractors' tag)"


def test_an_sft_control_row_names_its_steps_and_has_no_reward(tmp_path):
    _write(tmp_path, "base", 0, 0.5, [])
    _write(tmp_path, "sft_more", 0, 0.4, ["learning_rate=1e-4"])
    path = tmp_path / "sft_more" / "seed0" / "result.json"
    result = json.loads(path.read_text())
    result.update(sft_steps=950, reward=None, terms={})  # what run_variant writes for --sft-steps
    path.write_text(json.dumps(result))
    row = next(line for line in sweep.table(tmp_path).splitlines() if line.startswith("| sft_more"))
    assert row.startswith("| sft_more (`learning_rate=1e-4` SFT +950 steps, no GRPO) | 0 | 100 | 40.0 |")
    assert row.endswith("| 25 | – | – | – | – |")  # spans moved, then no reward, temporal, spatial or KL


def test_sft_control_continues_the_checkpoints_own_recipe(tmp_path, monkeypatch):
    from stvg_lab.train import sft
    from stvg_lab.train.recipe import load_recipe

    init = tmp_path / "init"
    init.mkdir()
    load_recipe("tiny_cpu", learning_rate=1e-3, max_steps=2500, aux_frame_cells=True, warmup_ratio=0.05).save(init / "recipe.yaml")
    seen = []
    monkeypatch.setattr(sft, "run_sft", lambda recipe: seen.append(recipe) or tmp_path / "run" / "final")
    sweep.sft_control(init, Path("data/x"), 3, tmp_path / "run", 950, {"learning_rate": 1e-4})
    (r,) = seen
    assert (r.model, r.data, r.seed, r.output_dir, r.max_steps) == (str(init), "data/x", 3, str(tmp_path / "run"), 950)
    assert (r.learning_rate, r.warmup_ratio, r.aux_frame_cells) == (1e-4, 0.0, True)  # the override, no warm-up, the SFT's own rest
    # from an averaged stage (tiny_cpu_ground averages from step 14,000) the 950-step control averages nothing
    load_recipe("tiny_cpu_ground").save(init / "recipe.yaml")
    sweep.sft_control(init, Path("data/x"), 3, tmp_path / "run", 950, {})
    assert (seen[-1].max_steps, seen[-1].average_from_step, seen[-1].lr_scheduler_type) == (950, None, "constant")


def test_a_root_scores_one_start_checkpoint(tmp_path):
    (tmp_path / "start").mkdir()
    sweep.claim_start(tmp_path, Path("a/final"))
    sweep.claim_start(tmp_path, Path("a/final"))  # the same start again: fine
    with pytest.raises(SystemExit, match="start is a/final, not b/final.*own --root"):
        sweep.claim_start(tmp_path, Path("b/final"))


def test_sft_control_after_grpo_takes_the_sft_recipe_behind_it(tmp_path, monkeypatch):
    # a GRPO checkpoint's recipe has GRPO's batch and schedule; the control must continue the SFT's
    from stvg_lab.train import sft as sft_module
    from stvg_lab.train.recipe import load_recipe

    sft, grpo = tmp_path / "sft", tmp_path / "grpo"
    sft.mkdir(), grpo.mkdir()
    load_recipe("tiny_cpu", per_device_batch_size=4).save(sft / "recipe.yaml")
    load_recipe("tiny_cpu_grpo", init_from=str(sft)).save(grpo / "recipe.yaml")
    assert sweep.sft_recipe_path(grpo) == sft / "recipe.yaml" and sweep.sft_recipe_path(sft) == sft / "recipe.yaml"
    got = {}
    monkeypatch.setattr(sft_module, "run_sft", lambda r: got.setdefault("r", r))
    sweep.sft_control(grpo, Path("data/x"), 0, tmp_path / "run", 10, {})
    assert (got["r"].per_device_batch_size, got["r"].model, got["r"].lr_scheduler_type) == (4, str(grpo), "cosine")
    load_recipe("tiny_cpu_grpo", init_from=str(tmp_path / "gone")).save(grpo / "recipe.yaml")
    with pytest.raises(SystemExit, match="cannot find the SFT behind"):
        sweep.sft_recipe_path(grpo)
