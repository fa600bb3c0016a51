"""bench/curriculum.py and bench/make_shipped_sft.py: the shipped checkpoint's recipe, without its hour of training.

The probe stages run a stand-in script here that writes what ``position_probe.py`` writes
(``<root>/<name>.jsonl``, ``<root>/<name>/final/``), so the rounds logic is exercised for real.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from stvg_lab.checkpoints import checkpoint_fingerprint

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


curriculum = _load("curriculum")
make_shipped = _load("make_shipped_sft")

# A position_probe.py stand-in: the gap of round k is GAPS[k-1]; it records the --init it was given.
FAKE_PROBE = """
import json, sys
from pathlib import Path
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
root, name = Path(args["--root"]), args["--name"]
k = int(name.rpartition("_")[2]) if name.rpartition("_")[2].isdigit() else 1
(root / name / "final").mkdir(parents=True)
gap = {gaps}[k - 1]
(root / f"{{name}}.jsonl").write_text(json.dumps({{"step": 250, "gap": gap, "init": args.get("--init")}}) + "\\n")
"""


@pytest.mark.parametrize("items, want", [
    ([], curriculum.ONSETS),
    (["bench_tf=0.5"], {**curriculum.ONSETS, "bench_tf": 0.5}),
    (["pre_dark=1", "solo_tf=2.5"], {**curriculum.ONSETS, "pre_dark": 1.0, "solo_tf": 2.5}),
])
def test_parse_onsets(items, want):
    assert curriculum.parse_onsets(items) == want


@pytest.mark.parametrize("item, message", [
    ("sft1=0.3", r"no probe stage 'sft1' \(stages: pre_dark, solo_tf, bench_tf\)"),
    ("solo_tf=high", r"'high' is not a number"),
    ("solo_tf", r"'' is not a number"),
])
def test_parse_onsets_names_the_bad_item(item, message):
    with pytest.raises(SystemExit, match=message):
        curriculum.parse_onsets([item])


def _probe(tmp_path, gaps):
    script = tmp_path / "fake_probe.py"
    script.write_text(FAKE_PROBE.format(gaps=gaps))
    return [sys.executable, str(script), "--root", str(tmp_path)]


def test_probe_stage_runs_rounds_from_its_own_end_until_onset(tmp_path):
    times = {}
    start = tmp_path / "prev" / "final"
    out = curriculum.probe_stage("solo_tf", _probe(tmp_path, [0.1, 0.5, 0.9]), [], start, tmp_path,
                                 rounds=3, onset=0.8, times=times)
    assert out == tmp_path / "solo_tf_3" / "final"
    inits = [json.loads((tmp_path / f"{n}.jsonl").read_text())["init"] for n in ("solo_tf", "solo_tf_2", "solo_tf_3")]
    assert inits == [str(start), str(tmp_path / "solo_tf" / "final"), str(tmp_path / "solo_tf_2" / "final")]
    assert set(times) == {"solo_tf", "solo_tf_2", "solo_tf_3"}
    # a second call finds every round done and runs nothing
    times.clear()
    assert curriculum.probe_stage("solo_tf", _probe(tmp_path, [0.1, 0.5, 0.9]), [], start, tmp_path,
                                  rounds=3, onset=0.8, times=times) == out
    assert times == {}


def test_probe_stage_without_onset_stops_and_says_so(tmp_path):
    with pytest.raises(SystemExit, match=r"'bench_tf': no reader after 2 rounds \(last gap 0.500 < 0.8\)"):
        curriculum.probe_stage("bench_tf", _probe(tmp_path, [0.1, 0.5, 0.9]), [], None, tmp_path,
                               rounds=2, onset=0.8, times={})
    assert not (tmp_path / "bench_tf_3").exists()


# A learnability_probe.py stand-in: round k (--name sft<k>) writes a val parse failure rate of 1 - RATES[k-1].
FAKE_SFT = """
import json, sys
from pathlib import Path
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
root, name = Path(args["--root"]), args["--name"]
(root / name / "final").mkdir(parents=True)
(root / name / "eval").mkdir()
rate = {rates}[int(name[3:]) - 1]
(root / name / "eval" / "metrics.json").write_text(json.dumps({{"n": 32, "parse_failure_rate": 1 - rate, "init": args["--model"]}}))
"""


@pytest.mark.parametrize("rates, rounds, least, want", [
    ([1.0, 1.0, 1.0], 4, 2, "sft2"),            # at least two rounds, even when the first parses
    ([0.0, 0.44, 0.97, 1.0], 4, 2, "sft3"),     # then until the val answers parse
    ([0.0, 0.9, 1.0], 4, 2, "sft2"),            # the threshold counts as parsed
    ([0.0, 0.41, 0.5, 0.6, 0.7], 4, 2, "sft4"),  # at most --max-sft rounds; the last one goes on
    ([0.34, 0.97, 1.0, 1.0], 4, 3, "sft3"),     # --min-sft 3 (the shipped checkpoint's): a third round although sft2 parses
    ([0.34, 0.5, 0.6, 0.95], 4, 3, "sft4"),     # and more after it while the answers do not parse
])
def test_sft_stages_run_rounds_until_the_val_answers_parse(tmp_path, rates, rounds, least, want):
    script = tmp_path / "fake_sft.py"
    script.write_text(FAKE_SFT.format(rates=rates))
    reader, times = tmp_path / "bench_tf" / "final", {}
    last, parse = curriculum.sft_stages([sys.executable, str(script), "--root", str(tmp_path)], reader, tmp_path,
                                        rounds=rounds, parse=0.9, times=times, min_rounds=least)
    n = int(want[3:])
    assert last == want and set(times) == set(parse) == {f"sft{k}" for k in range(1, n + 1)}
    assert parse == pytest.approx({f"sft{k}": rates[k - 1] for k in range(1, n + 1)})
    inits = [json.loads((tmp_path / f"sft{k}" / "eval" / "metrics.json").read_text())["init"] for k in range(1, n + 1)]
    assert inits == [str(reader)] + [str(tmp_path / f"sft{k}" / "final") for k in range(1, n)]
    assert not (tmp_path / f"sft{n + 1}").exists()


@pytest.mark.parametrize("least, most", [(0, 4), (5, 4)])
def test_sft_stages_refuse_a_minimum_outside_one_to_the_maximum(tmp_path, least, most):
    with pytest.raises(SystemExit, match="--min-sft"):
        curriculum.sft_stages([sys.executable, "-c", "pass"], tmp_path, tmp_path, rounds=most, parse=0.9, times={}, min_rounds=least)
    assert not any(tmp_path.iterdir())


def test_grpo_stage_from_an_earlier_sft_round_is_refused(tmp_path):
    from stvg_lab.train.recipe import load_recipe

    run = tmp_path / "grpo"
    curriculum.check_grpo_start(run, tmp_path / "sft3" / "final")  # nothing there yet: fine
    (run / "final").mkdir(parents=True)
    load_recipe("tiny_cpu_grpo", init_from=str(tmp_path / "sft2" / "final")).save(run / "recipe.yaml")
    curriculum.check_grpo_start(run, tmp_path / "sft2" / "final")
    with pytest.raises(SystemExit, match=r"grpo/recipe.yaml: this GRPO run started from .*sft2/final, the SFT is now .*sft3/final"):
        curriculum.check_grpo_start(run, tmp_path / "sft3" / "final")


def test_curriculum_record_keeps_every_probe_round_and_the_test_numbers(tmp_path):
    for name, gap in [("pre_dark", 0.0), ("pre_dark_2", 3.7), ("solo_tf", 1.4), ("bench_tf", 0.9), ("results", 9.0)]:
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({"step": 1, "gap": 0.0}) + "\n" + json.dumps({"gap": gap}) + "\n")
    run = {"parse_rate": 1.0, "pred_m_tIoU": 0.6, "pred_m_vIoU": 0.09, "think_m_tIoU": 0.6, "think_m_vIoU": 0.1, "reliance": {}}
    (tmp_path / "result.json").write_text(json.dumps({"seed": 0, "data": "data/synthetic", "n_test": 100,
                                                      "onsets": curriculum.ONSETS, "stage_s": {"sft1": 800},
                                                      "sft2": run, "grpo": run}))
    record = make_shipped.curriculum_record(tmp_path)
    assert record["probe_gaps"] == {"bench_tf": 0.9, "pre_dark": 0.0, "pre_dark_2": 3.7, "solo_tf": 1.4}  # not results.jsonl
    assert record["test"]["sft2"] == {k: v for k, v in run.items() if k != "reliance"}
    assert (record["seed"], record["n_test"], record["stage_s"]) == (0, 100, {"sft1": 800})
    assert record["sft_stage"] == "sft2"  # a result written before the SFT had rounds
    # a curriculum whose SFT took three rounds: the record's test numbers are sft3's
    result = json.loads((tmp_path / "result.json").read_text())
    result.update(sft_stage="sft3", sft_val_parse={"sft1": 0.0, "sft2": 0.4, "sft3": 0.95}, sft3=result.pop("sft2"))
    (tmp_path / "result.json").write_text(json.dumps(result))
    record = make_shipped.curriculum_record(tmp_path)
    assert set(record["test"]) == {"sft3", "grpo"} and record["sft_val_parse"]["sft3"] == 0.95


def _result(root: Path, seed: int, m_tiou: float, data: str = "data/synthetic", fmt: str | None = None) -> None:
    run = {"parse_rate": 1.0, **{f"{t}_{m}": m_tiou if m == "m_tIoU" else 0.1 for t in ("pred", "think") for m in curriculum.METRICS},
           "baselines": {"whole video + mean box": dict.fromkeys(curriculum.METRICS, 0.5)},
           "reliance": {"gap": 0.01}, "reliance_by_segment": {"time": {"gap": 0.4}}}
    root.mkdir()
    result = {"seed": seed, "data": data, "n_test": 100, "sft2": run, "grpo": run, "grpo_reward": {"first": 0.25, "last": 0.75}}
    (root / "result.json").write_text(json.dumps(result if fmt is None else {**result, "format": fmt}))


def test_table_is_mean_and_sample_std_over_seeds(tmp_path):
    _result(tmp_path / "a", 0, 0.5)
    _result(tmp_path / "b", 1, 0.7)
    text = curriculum.table([tmp_path / "a", tmp_path / "b"])
    sft = next(line for line in text.splitlines() if line.startswith("| curriculum SFT"))
    assert sft.split(" | ")[1:4] == ["100.0 ± 0.0", "60.0 ± 14.1", "10.0 ± 0.0"]
    assert sft.endswith("| 0.40 ± 0.00 | 0.010 ± 0.000 |")
    assert "| baseline: whole video + mean box | – | 50.0 | 50.0 | 50.0 | 50.0 |" in text
    assert "seed 0: 0.25 → 0.75, seed 1: 0.25 → 0.75" in text
    assert "| curriculum SFT (seed 0: sft2, seed 1: sft2) |" in text
    # a seed whose SFT took a third round: its row is sft3's numbers
    result = json.loads((tmp_path / "b" / "result.json").read_text())
    result.update(sft_stage="sft3", sft3={**result.pop("sft2"), "parse_rate": 0.5})
    (tmp_path / "b" / "result.json").write_text(json.dumps(result))
    sft = next(line for line in curriculum.table([tmp_path / "a", tmp_path / "b"]).splitlines() if line.startswith("| curriculum SFT"))
    assert sft.startswith("| curriculum SFT (seed 0: sft2, seed 1: sft3) | 75.0 ± 35.4 |")


def test_table_refuses_mixed_benchmarks_and_missing_results(tmp_path):
    _result(tmp_path / "a", 0, 0.5)
    _result(tmp_path / "b", 1, 0.7, data="data/solo_nomotion")
    with pytest.raises(SystemExit, match="different benchmarks"):
        curriculum.table([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(SystemExit, match=r"no curriculum result in .*c/result_grpo_t0.7.json"):
        curriculum.table([tmp_path / "c"], "grpo_t0.7")


def test_table_names_the_answer_format_and_refuses_mixed_ones(tmp_path):
    _result(tmp_path / "a", 0, 0.5)  # a result written before --format: compact
    _result(tmp_path / "b", 1, 0.7, fmt="compact")
    _result(tmp_path / "c", 2, 0.7, fmt="compact_labels")
    assert "100 test clips, answer format compact, %" in curriculum.table([tmp_path / "a", tmp_path / "b"])
    with pytest.raises(SystemExit, match=r"answer formats: .*'compact'\), .*'compact_labels'\)"):
        curriculum.table([tmp_path / "a", tmp_path / "c"])


def test_sft_rounds_of_another_answer_format_are_refused(tmp_path):
    from stvg_lab.train.recipe import load_recipe

    curriculum.check_sft_format(tmp_path, "compact_labels")  # no round yet: fine
    for k, fmt in ((1, "compact"), (2, "compact")):
        (tmp_path / f"sft{k}").mkdir()
        load_recipe("tiny_cpu", answer_format=fmt).save(tmp_path / f"sft{k}" / "recipe.yaml")
    curriculum.check_sft_format(tmp_path, "compact")
    with pytest.raises(SystemExit, match=r"sft1/recipe.yaml: this SFT round trained answer format 'compact', not --format 'compact_labels'"):
        curriculum.check_sft_format(tmp_path, "compact_labels")


def _polish_round(root: Path, k: int, model: str, seed: int = 0, vIoU: float = 0.1) -> None:
    """A finished tiny_cpu_polish round as make_shipped_sft.polish leaves it (weights faked, val cached)."""
    import os

    from stvg_lab.train.recipe import load_recipe

    run = root / f"polish{k}"
    (run / "final").mkdir(parents=True)
    (run / "final" / "model.safetensors").write_bytes(b"")
    load_recipe("tiny_cpu_polish", model=model, seed=seed, output_dir=str(run)).save(run / "recipe.yaml")
    (run / "log.jsonl").write_text(json.dumps({"step": 2500, "loss": 0.4 - k / 100}) + "\n" + json.dumps({"step": 2500, "train_runtime": 470.4}) + "\n")
    (run / "val50").mkdir()
    metrics = {"n": 50, "parse_failure_rate": 0.02, "pred": {"m_tIoU": 0.7, "m_vIoU": vIoU, "vIoU@0.3": 0.1}}
    (run / "val50" / "metrics.json").write_text(json.dumps(metrics))
    os.utime(run / "final" / "model.safetensors", (1, 1))  # the val numbers are newer than the weights: reused


def test_polish_rounds_chain_from_the_start_and_refuse_another_start(tmp_path):
    start = tmp_path / "sft3" / "final"
    _polish_round(tmp_path, 1, str(start), vIoU=0.12)
    _polish_round(tmp_path, 2, str(tmp_path / "polish1" / "final"), vIoU=0.13)
    records = make_shipped.polish(tmp_path, start, 2, "data/synthetic", 0)
    assert [r["round"] for r in records] == ["polish1", "polish2"]
    assert records[1]["model"] == str(tmp_path / "polish1" / "final")
    assert (records[1]["wall_s"], records[1]["final_loss"]) == (470, 0.38)
    assert records[1]["val"] == {"n": 50, "parse_rate": 0.98, "pred_m_tIoU": 0.7, "pred_m_vIoU": 0.13, "pred_vIoU@0.3": 0.1}
    # a finished round trained from another checkpoint, or with another seed, is not silently reused
    with pytest.raises(SystemExit, match=r"polish1/recipe.yaml differs from this round's tiny_cpu_polish in \['model'\]"):
        make_shipped.polish(tmp_path, tmp_path / "sft2" / "final", 2, "data/synthetic", 0)
    with pytest.raises(SystemExit, match=r"\['seed'\]"):
        make_shipped.polish(tmp_path, start, 1, "data/synthetic", 1)


def _ground_stage(run: Path, model: str, seed: int = 0) -> None:
    """A finished tiny_cpu_ground stage as make_shipped_sft.ground leaves it, resumed once (two starts in its log)."""
    import os

    from stvg_lab.train.recipe import load_recipe

    (run / "final").mkdir(parents=True)
    (run / "final" / "model.safetensors").write_bytes(b"")
    load_recipe("tiny_cpu_ground", model=model, seed=seed, output_dir=str(run)).save(run / "recipe.yaml")
    rows = [{"step": 6000, "loss": 0.32}, {"step": 6000, "train_runtime": 2320.9}, {"step": 12000, "loss": 0.25}, {"step": 12000, "train_runtime": 2000.2}]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run / "val50").mkdir()
    (run / "val50" / "metrics.json").write_text(json.dumps({"n": 50, "parse_failure_rate": 0.0, "pred": {"m_tIoU": 0.75, "m_vIoU": 0.2, "vIoU@0.3": 0.3}}))
    os.utime(run / "final" / "model.safetensors", (1, 1))


def test_ground_stage_counts_every_start_and_refuses_another_start(tmp_path):
    start = tmp_path / "polish3" / "final"
    _ground_stage(tmp_path / "ground", str(start))
    record = make_shipped.ground(tmp_path / "ground", start, "data/synthetic", 0)
    assert (record["round"], record["model"], record["wall_s"], record["final_loss"]) == ("ground", str(start), 4321, 0.25)
    assert record["val"]["pred_m_vIoU"] == 0.2
    with pytest.raises(SystemExit, match=r"ground/recipe.yaml differs from the stage's tiny_cpu_ground in \['model'\]"):
        make_shipped.ground(tmp_path / "ground", tmp_path / "polish2" / "final", "data/synthetic", 0)


def _fake_shipped(tmp_path: Path, monkeypatch, weights: bytes):
    """A shipped checkpoint folder under tmp_path holding ``weights``; returns a writer of its provenance.json."""
    import stvg_lab.train.shipped as shipped

    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path / "ship")
    monkeypatch.chdir(tmp_path)
    ship = tmp_path / "ship" / "tiny_cpu_sft"
    ship.mkdir(parents=True)
    (ship / "model.safetensors").write_bytes(weights)
    return lambda **fields: (ship / "provenance.json").write_text(json.dumps(fields))


def test_from_shipped_adds_the_ground_stage_to_a_polished_checkpoint_or_continues_the_shipped_one(tmp_path, monkeypatch):
    provenance = _fake_shipped(tmp_path, monkeypatch, b"shipped weights")

    provenance(recipe={"name": "tiny_cpu"}, command="x", curriculum=None, polish=None)
    with pytest.raises(SystemExit, match="has no polish rounds"):
        make_shipped.from_shipped(tmp_path / "ground", "data/synthetic", 0)
    # the package ships the polished checkpoint: the stage starts from it
    polish_recipe = {"name": "tiny_cpu_polish", "learning_rate": 3e-4}
    provenance(recipe=polish_recipe, command="c", curriculum={"seed": 0}, polish=[{"round": "polish1"}], git_commit="abc")
    _ground_stage(tmp_path / "ground", "ship/tiny_cpu_sft")  # the model path as the stage's recipe records it
    run, kept = make_shipped.from_shipped(tmp_path / "ground", "data/synthetic", 0)
    assert run == tmp_path / "ground" and kept["polish_recipe"] == polish_recipe and kept["ground"]["model"] == "ship/tiny_cpu_sft"
    assert (kept["curriculum"], kept["polish"], kept["polish_command"], kept["polish_git_commit"]) == ({"seed": 0}, [{"round": "polish1"}], "c", "abc")
    assert "ground_replaced" not in kept
    # the package ships a 12,000-step stage: only that stage's run, continued, may replace it
    old_ground = {"round": "ground", "model": "ship/tiny_cpu_sft", "dir": "runs/ground12k"}
    provenance(recipe={"name": "tiny_cpu_ground", "max_steps": 12000}, command="c --no-ground && s", curriculum={"seed": 0}, polish=[{"round": "polish1"}],
               polish_recipe=polish_recipe, polish_command="c", polish_git_commit="abc", ground=old_ground, git_commit="def")
    with pytest.raises(SystemExit, match="whose checkpoint-12000 holds the shipped weights .it has no such checkpoint"):
        make_shipped.from_shipped(tmp_path / "ground", "data/synthetic", 0)
    (tmp_path / "ground" / "checkpoint-12000").mkdir()
    (tmp_path / "ground" / "checkpoint-12000" / "model.safetensors").write_bytes(b"other weights")
    with pytest.raises(SystemExit, match="its weights differ"):
        make_shipped.from_shipped(tmp_path / "ground", "data/synthetic", 0)
    (tmp_path / "ground" / "checkpoint-12000" / "model.safetensors").write_bytes(b"shipped weights")
    run, kept = make_shipped.from_shipped(tmp_path / "ground", "data/synthetic", 0)
    assert kept["ground"]["model"] == "ship/tiny_cpu_sft" and kept["polish_recipe"] == polish_recipe and kept["polish_command"] == "c"
    replaced = kept["ground_replaced"]
    assert (replaced["record"], replaced["git_commit"], replaced["recipe"]["max_steps"]) == (old_ground, "def", 12000)
    assert replaced["sha256"] == hashlib.sha256(b"shipped weights").hexdigest()


def _clips_stage(run: Path, model: str, seed: int = 0) -> None:
    """A finished tiny_cpu_clips stage as make_shipped_sft.clips leaves it (weights faked, val cached)."""
    import os

    from stvg_lab.train.recipe import load_recipe

    (run / "final").mkdir(parents=True)
    (run / "final" / "model.safetensors").write_bytes(b"")
    load_recipe("tiny_cpu_clips", model=model, seed=seed, output_dir=str(run)).save(run / "recipe.yaml")
    (run / "log.jsonl").write_text(json.dumps({"step": 6000, "loss": 0.22}) + "\n" + json.dumps({"step": 6000, "train_runtime": 2280.4}) + "\n")
    (run / "val50").mkdir()
    (run / "val50" / "metrics.json").write_text(json.dumps({"n": 50, "parse_failure_rate": 0.0, "pred": {"m_tIoU": 0.8, "m_vIoU": 0.3, "vIoU@0.3": 0.5}}))
    os.utime(run / "final" / "model.safetensors", (1, 1))


def test_clips_from_shipped_follows_a_shipped_grounding_stage_and_keeps_its_records(tmp_path, monkeypatch):
    provenance = _fake_shipped(tmp_path, monkeypatch, b"grounded weights")

    polished = {"curriculum": {"seed": 0}, "polish": [{"round": "polish1"}], "polish_recipe": {"name": "tiny_cpu_polish"},
                "polish_command": "c", "polish_git_commit": "abc"}
    provenance(recipe={"name": "tiny_cpu_polish"}, command="c", curriculum={"seed": 0}, polish=[{"round": "polish1"}])
    with pytest.raises(SystemExit, match="ships no grounding stage"):
        make_shipped.clips_from_shipped(tmp_path / "clips", "data/synth_train12k", 0)
    ground_recipe = {"name": "tiny_cpu_ground", "max_steps": 18000}
    ground = {"round": "ground", "model": "ship/tiny_cpu_sft"}
    provenance(recipe=ground_recipe, command="c --no-ground && g", ground=ground, ground_replaced={"sha256": "0"}, git_commit="def", **polished)
    _clips_stage(tmp_path / "clips", "ship/tiny_cpu_sft")  # the model path as the stage's recipe records it
    run, kept = make_shipped.clips_from_shipped(tmp_path / "clips", "data/synth_train12k", 0)
    assert run == tmp_path / "clips" and kept["clips"]["model"] == "ship/tiny_cpu_sft" and kept["clips"]["data"] == "data/synth_train12k"
    assert (kept["clips"]["wall_s"], kept["clips"]["final_loss"], kept["clips"]["val"]["pred_m_vIoU"]) == (2280, 0.22, 0.3)
    assert {k: kept[k] for k in polished} == polished and (kept["ground"], kept["ground_replaced"]) == (ground, {"sha256": "0"})
    assert (kept["ground_recipe"], kept["ground_command"], kept["ground_git_commit"]) == (ground_recipe, "c --no-ground && g", "def")
    assert kept["ground_sha256"] == hashlib.sha256(b"grounded weights").hexdigest()
    # once the clips stage ships, the grounding stage cannot be added or continued from the package ...
    grounded = {k: kept[k] for k in ("ground_recipe", "ground_command", "ground_git_commit", "ground_sha256")}
    old_clips = {"round": "clips", "model": "ship/tiny_cpu_sft", "averaged_from": [{"path": "runs/clips/checkpoint-6000", "fingerprint": "0"}]}
    clips_shipped = dict(recipe={"name": "tiny_cpu_clips", "max_steps": 6000}, command="c --no-ground && g && k", ground=ground,
                         clips=old_clips, git_commit="fed", **grounded, **polished)
    provenance(**clips_shipped)
    with pytest.raises(SystemExit, match="ships a clips stage, so the grounding stage under it is not in the package"):
        make_shipped.from_shipped(tmp_path / "ground", "data/synthetic", 0)
    # ... and only the clips stage's own run, continued, may replace it: its checkpoint-6000 as the provenance fingerprinted it
    run = tmp_path / "clips_10k"
    with pytest.raises(SystemExit, match="whose checkpoint-6000 the provenance fingerprinted .it has no such checkpoint"):
        make_shipped.clips_from_shipped(run, "data/synth_train12k", 0)
    (run / "checkpoint-6000").mkdir(parents=True)
    (run / "checkpoint-6000" / "model.safetensors").write_bytes(b"step 6000")
    with pytest.raises(SystemExit, match="its files differ"):
        make_shipped.clips_from_shipped(run, "data/synth_train12k", 0)
    old_clips["averaged_from"] = [{"path": "runs/clips/checkpoint-5500", "fingerprint": "0"}]
    provenance(**clips_shipped)
    with pytest.raises(SystemExit, match="records no fingerprint of its clips stage's checkpoint-6000"):
        make_shipped.clips_from_shipped(run, "data/synth_train12k", 0)
    old_clips["averaged_from"] = [{"path": "runs/clips/checkpoint-6000", "fingerprint": checkpoint_fingerprint(run / "checkpoint-6000")}]
    provenance(**clips_shipped)
    _clips_stage(run, "ship/tiny_cpu_sft")  # the continued stage, finished (its recipe records the same start)
    run_dir, kept = make_shipped.clips_from_shipped(run, "data/synth_train12k", 0)
    assert run_dir == run and kept["clips"]["model"] == "ship/tiny_cpu_sft" and kept["clips"]["dir"] == str(run)
    assert {k: kept[k] for k in grounded} == grounded and {k: kept[k] for k in polished} == polished and kept["ground"] == ground
    replaced = kept["clips_replaced"]
    assert (replaced["record"], replaced["recipe"]["max_steps"], replaced["git_commit"]) == (old_clips, 6000, "fed")
    assert replaced["sha256"] == hashlib.sha256(b"grounded weights").hexdigest()  # the weights the package shipped


def test_clips_data_must_be_the_same_benchmark_with_more_clips(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = {"generator_version": 7, "seed": 0, "config": {"width": 112}, "counts": {"train": 3000, "val": 50, "test": 100}}

    def dataset(root, **fields):
        (tmp_path / root).mkdir(parents=True, exist_ok=True)
        (tmp_path / root / "dataset.json").write_text(json.dumps({**manifest, **fields}))

    dataset("data/synthetic")
    dataset("data/synth_train12k", counts={"train": 12000, "val": 50, "test": 100})
    assert make_shipped.clips_data("data/synthetic") == Path("data/synth_train12k")
    dataset("data/synth_train12k", counts={"train": 12000, "val": 50, "test": 100}, config={"width": 224})
    with pytest.raises(SystemExit, match=r"synth_train12k/dataset.json is not data/synthetic's benchmark with 12000 train clips \(config \(config fields: width\) differ\)"):
        make_shipped.clips_data("data/synthetic")
    dataset("data/synth_train12k")  # the benchmark, with the default's 3,000 train clips
    with pytest.raises(SystemExit, match=r"\(train count differ\)"):
        make_shipped.clips_data("data/synthetic")


@pytest.mark.parametrize("argv, message", [
    (["--clips-from-shipped", "runs/c", "--no-clips"], "--clips-from-shipped runs the clips stage alone"),
    (["--clips-from-shipped", "runs/c", "--from-shipped", "runs/g"], "--clips-from-shipped runs the clips stage alone"),
    (["--polish-rounds", "0"], "--polish-rounds 0 needs --no-ground"),
    (["--from-shipped", "runs/g", "--no-ground"], "--from-shipped runs the grounding stage alone"),
    (["--from-shipped", "runs/g", "--root", "r"], "--from-shipped runs the grounding stage alone"),
    (["--from-shipped", "runs/g", "--no-clips"], "--from-shipped runs the grounding stage alone"),  # it runs no clips stage to skip
    (["--from-run", "runs/sft", "--from-shipped", "runs/g"], "--from-run exports a finished run as it is"),
])
def test_make_shipped_refuses_flags_that_do_not_go_together(monkeypatch, capsys, argv, message):
    monkeypatch.setattr("sys.argv", ["make_shipped_sft.py", *argv])
    with pytest.raises(SystemExit) as e:
        make_shipped.main()
    assert e.value.code == 2 and message in capsys.readouterr().err
