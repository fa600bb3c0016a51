"""stvg_lab.train.grpo: the GRPO run on stock TRL with our rewards (Eq. 10-12), its log, checkpoints and resume.

Everything runs the real stack (``STVGGRPOTrainer`` over TRL 1.16, the tiny Qwen2.5-VL stand-in,
a 4-clip synthetic set) for 2-3 optimizer steps with 16-token completions. The stand-in is
random, so it never emits the answer format and the five rewards are 0: that checks the wiring
and the log, not learning. Where a test needs non-zero advantages (resume must reproduce the
same updates) it swaps ``reward_setup`` for a reward that differs between completions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import TrainerCallback

from stvg_lab import reward_variants as variants_module
from stvg_lab.data.synth import generate_synthetic
from stvg_lab.model import build_tiny_model, load_model
from stvg_lab.train.grpo import (
    add_grpo_arguments,
    group_spread_metrics,
    greedy_metrics,
    grpo_config,
    init_checkpoint,
    recipe_from_args,
    run_grpo,
)
from stvg_lab.train.logging import read_log
from stvg_lab.train.recipe import load_recipe
from stvg_lab.train.runs import read_environment

REPO = Path(__file__).resolve().parents[1]
REWARD_NAMES = ["format_reward", "consistency_reward", "temporal_reward", "spatial_reward", "think_reward"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run this module's trainings on one intra-op thread (restored afterwards).

    The tiny model gains nothing from a second thread, and on a shared 2-core machine the two
    OpenMP threads spin against other jobs: the resume test took 46 s with 2 threads and 9 s with 1.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def assets(tmp_path_factory) -> dict[str, Path]:
    """A 4/2/2-clip synthetic set and the stand-in saved to disk (the "SFT checkpoint" the runs start from)."""
    root = tmp_path_factory.mktemp("grpo_assets")
    data = generate_synthetic(root / "synth", 4, 2, 2, seed=0, progress=False, workers=1)
    init = build_tiny_model(root / "init", seed=0)
    return {"data": Path(data), "init": init}


def _recipe(assets, out: Path, **overrides):
    settings = dict(
        data=str(assets["data"]), init_from=str(assets["init"]), output_dir=str(out), max_steps=2,
        per_device_batch_size=2, num_generations=2, max_completion_length=16, beta=0.04,
        save_steps=1, logging_steps=1, warmup_ratio=0.0, lr_scheduler_type="constant",
    )
    settings.update(overrides)
    return load_recipe("tiny_cpu", **settings)


def _varied_reward(completions, completion_ids, **kwargs) -> list[float]:
    # Differs between the completions of a group, so advantages, loss and updates are non-zero.
    return [float(sum(ids) % 7) for ids in completion_ids]


@pytest.fixture
def varied_rewards(monkeypatch):
    monkeypatch.setattr(variants_module, "reward_setup", lambda variant, lambda_k, scale: ([_varied_reward], [1.0]))


class _KillAt(TrainerCallback):
    """Raise at the end of optimizer step ``step``, before that step is logged or saved (a killed job)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


@pytest.mark.parametrize(
    "rewards, n, expected",
    [
        # two groups of 2, one column: group 0 constant, group 1 {0, 1} (Bessel std 0.7071)
        ([[1], [1], [0], [1]], 2, {"group_std": 0.5 * math.sqrt(0.5), "frac_zero_std": 0.5}),
        # one group of 4 with every value equal: no spread, all groups zero
        ([[2], [2], [2], [2]], 4, {"group_std": 0.0, "frac_zero_std": 1.0}),
        # a NaN (reward returned None) is ignored: group {3, NaN} has one value, spread 0; {0, 2} std sqrt(2)
        ([[3], [np.nan], [0], [2]], 2, {"group_std": 0.5 * math.sqrt(2.0), "frac_zero_std": 0.5}),
        # a single generation per group (eval with num_generations_eval=1): spread is 0, never NaN
        ([[0], [5]], 1, {"group_std": 0.0, "frac_zero_std": 1.0}),
    ],
)
def test_group_spread_metrics_cases(rewards, n, expected):
    got = group_spread_metrics(np.array(rewards, dtype=float), n, ["r"])
    assert got["rewards/r/group_std"] == pytest.approx(expected["group_std"])
    assert got["rewards/r/frac_zero_std"] == pytest.approx(expected["frac_zero_std"])


def test_group_spread_metrics_keeps_columns_apart_and_rejects_bad_shapes():
    # column a varies in both groups, column b in none: per-component spread is what TRL does not log
    got = group_spread_metrics(np.array([[0, 1], [1, 1], [0, 2], [1, 2]], dtype=float), 2, ["a", "b"])
    assert got["rewards/a/frac_zero_std"] == 0.0 and got["rewards/b/frac_zero_std"] == 1.0
    with pytest.raises(ValueError, match="groups of num_generations=3"):
        group_spread_metrics(np.zeros((4, 1)), 3, ["a"])
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        group_spread_metrics(np.zeros((4, 1)), 2, ["a", "b"])


def test_grpo_config_on_cpu_sets_everything_explicitly(assets, tmp_path):
    config = grpo_config(_recipe(assets, tmp_path, learning_rate=3e-4, beta=0.1, epsilon=0.3), cuda=False, world=1)
    # GRPOConfig's GPU defaults (bf16, checkpointing, lr 1e-6, beta 0) are all replaced
    assert (config.use_cpu, config.bf16, config.activation_checkpointing) == (True, False, False)
    assert (config.learning_rate, config.beta, config.epsilon) == (3e-4, 0.1, 0.3)
    assert (config.num_generations, config.loss_type, config.scale_rewards) == (2, "grpo", "group")
    assert (config.save_steps, config.logging_steps, config.max_steps) == (1, 1, 2)
    assert config.reward_weights == [1.0, 1.0, 1.0, 1.0, 0.5]  # Eq. 10 with λk = 0.5
    assert config.multi_objective_aggregation == "sum_then_normalize"  # Eq. 10, then Eq. 11
    gdpo = grpo_config(_recipe(assets, tmp_path, reward_aggregation="normalize_then_sum"), cuda=False, world=1)
    assert gdpo.multi_objective_aggregation == "normalize_then_sum"
    heavy = grpo_config(_recipe(assets, tmp_path, reward_scale={"format": 3}), cuda=False, world=1)
    assert heavy.reward_weights == [3.0, 1.0, 1.0, 1.0, 0.5]  # not the paper: R_f weighs 3


def test_a_bad_reward_scale_names_the_field(assets, tmp_path):
    with pytest.raises(ValueError, match="field 'reward_scale' = .* unknown term 'fromat'"):
        _recipe(assets, tmp_path, reward_scale={"fromat": 3})


def test_an_unknown_reward_aggregation_names_the_field(assets, tmp_path):
    with pytest.raises(ValueError, match="field 'reward_aggregation' = 'mean' is not one of"):
        _recipe(assets, tmp_path, reward_aggregation="mean")


def test_grpo_config_rejects_a_generation_round_that_splits_a_group(assets, tmp_path):
    # 2 completions per step cannot hold a group of 4
    with pytest.raises(ValueError, match="not a multiple of num_generations=4"):
        grpo_config(_recipe(assets, tmp_path, num_generations=4), cuda=False, world=1)


def test_vllm_is_refused_before_anything_loads(assets, tmp_path):
    with pytest.raises(NotImplementedError, match="use_vllm"):
        run_grpo(_recipe(assets, tmp_path / "run", use_vllm=True))
    assert not (tmp_path / "run").exists()


def test_init_from_base_builds_the_tiny_stand_in_and_a_bad_path_names_the_fix(assets, tmp_path):
    assert (init_checkpoint(_recipe(assets, tmp_path, init_from="base")) / "config.json").is_file()
    with pytest.raises(FileNotFoundError, match="SFT run"):
        init_checkpoint(_recipe(assets, tmp_path, init_from=str(tmp_path / "missing")))


def test_cli_arguments_override_the_recipe(assets, tmp_path):
    parser = add_grpo_arguments(argparse.ArgumentParser())
    args = parser.parse_args([
        "--recipe", "tiny_cpu", "--init-from", "runs/sft/final", "--out", str(tmp_path), "--max-steps", "7",
        "--set", "beta=0.2", "--set", f"data={assets['data']}", "--resume",
    ])
    recipe = recipe_from_args(args)
    assert (recipe.init_from, recipe.output_dir, recipe.max_steps, recipe.beta) == (
        "runs/sft/final", str(tmp_path), 7, 0.2
    )
    assert args.resume


@pytest.mark.parametrize(
    "rewards, weights, n, expected",
    [
        # one group of 3, weights [1, 0.5]: totals 2.0 (greedy), 1.5, 3.0 -> one sample beats it, margin 2.0 - 2.25
        ([[1, 2], [1, 1], [2, 2]], [1.0, 0.5], 3, (2.0, -0.25, 1.0)),
        # two groups of 2: the greedy answer ties its sample (not beaten) and beats its sample
        ([[1, 0], [1, 0], [3, 0], [1, 0]], [1.0, 1.0], 2, (2.0, 1.0, 0.0)),
        # a NaN reward counts 0, as in TRL's nansum over the weighted components
        ([[np.nan, 1], [0, 2]], [1.0, 1.0], 2, (1.0, -1.0, 1.0)),
    ],
)
def test_greedy_metrics_cases(rewards, weights, n, expected):
    got = greedy_metrics(np.array(rewards, dtype=float), weights, n)
    assert (got["greedy/reward"], got["greedy/minus_samples"], got["greedy/frac_beaten"]) == pytest.approx(expected)


def test_greedy_metrics_rejects_groups_without_samples():
    with pytest.raises(ValueError, match="num_generations=1"):
        greedy_metrics(np.zeros((2, 1)), [1.0], 1)
    with pytest.raises(ValueError, match="num_generations=3"):
        greedy_metrics(np.zeros((4, 1)), [1.0], 3)


def test_greedy_in_group_run_logs_how_the_greedy_answer_fares(assets, tmp_path, varied_rewards):
    out = tmp_path / "greedy"
    run_grpo(_recipe(assets, out, greedy_in_group=True, temperature=0.3))
    assert load_recipe(out / "recipe.yaml").greedy_in_group
    records = [r for r in read_log(out) if "loss" in r]
    assert len(records) == 2
    for r in records:
        assert all(math.isfinite(r[f"greedy/{k}"]) for k in ("reward", "minus_samples"))
        assert 0.0 <= r["greedy/frac_beaten"] <= 1.0


def test_two_steps_log_every_component_and_the_final_checkpoint_loads(assets, tmp_path):
    out = tmp_path / "run"
    torch.set_num_threads(2)  # the recipe's torch_threads (1) must win over the process's setting
    try:
        final = run_grpo(_recipe(assets, out))
    finally:
        torch.set_num_threads(1)
    [env] = read_environment(out)  # one start, recorded with what it ran on
    assert env["resumed_from"] is None and env["torch_threads"] == 1
    assert env["packages"]["trl"] == "1.16.0" and env["packages"]["torch"] == torch.__version__
    records = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert math.isfinite(r["loss"]) and math.isfinite(r["kl"])  # beta > 0: TRL computes the KL
        for name in REWARD_NAMES:
            for stat in ("mean", "std", "group_std", "frac_zero_std"):
                assert math.isfinite(r[f"rewards/{name}/{stat}"]), (name, stat)
        assert 0.0 <= r["frac_reward_zero_std"] <= 1.0
        assert 0 < r["completions/mean_length"] <= 16
        assert not any(key.startswith("greedy/") for key in r)  # greedy_in_group is off by default
    assert (out / "recipe.yaml").is_file() and (out / "log.csv").is_file()
    assert load_recipe(out / "recipe.yaml").beta == 0.04
    model, processor = load_model(final, device="cpu")
    assert model.config.model_type == "qwen2_5_vl" and processor.tokenizer is not None
    # the run directory is not reused by accident
    with pytest.raises(FileExistsError, match="resume"):
        run_grpo(_recipe(assets, out))


def test_lora_run_saves_the_adapter_and_a_merged_final_checkpoint(assets, tmp_path):
    out = tmp_path / "lora"
    # beta > 0 with peft: TRL takes the reference from the base weights with the adapter disabled
    final = run_grpo(_recipe(assets, out, max_steps=1, lora=True, lora_r=4, lora_alpha=8))
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (final / "adapter_config.json").exists()  # final is a plain checkpoint, merged
    model, _ = load_model(final, device="cpu")
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_resume_without_a_checkpoint_starts_fresh_with_a_warning(tmp_path, caplog):
    # the run died before its first checkpoint: resuming starts from the first step (shared
    # with SFT, stvg_lab.train.runs.resume_point) and says so
    from stvg_lab.train.runs import resume_point

    (tmp_path / "empty").mkdir()
    with caplog.at_level("WARNING"):
        assert resume_point(tmp_path / "empty", resume=True) is None
    assert "no checkpoint" in caplog.text


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(checkpoint / "model.safetensors"))


def test_a_killed_run_resumes_to_the_same_final_step_and_weights(assets, tmp_path, varied_rewards):
    whole = tmp_path / "whole"
    run_grpo(_recipe(assets, whole, max_steps=3))

    killed = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_grpo(_recipe(assets, killed, max_steps=3), callbacks=[_KillAt(2)])
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-1"]
    final = run_grpo(_recipe(assets, killed, max_steps=3), resume=True)
    assert [Path(e["resumed_from"] or "").name for e in read_environment(killed)] == ["", "checkpoint-1"]

    state = json.loads((killed / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 == state["max_steps"]
    assert [r["step"] for r in read_log(killed) if "loss" in r] == [1, 2, 3]  # each step logged once
    # Same data order, same sampling RNG, same optimizer state: the same three updates.
    a, b = _weights(whole / "final"), _weights(final)
    assert a.keys() == b.keys()
    assert any(not torch.equal(a[k], _weights(assets["init"])[k]) for k in a)  # the updates were not empty
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_average_from_step_makes_the_final_policy_the_mean_of_its_checkpoints(assets, tmp_path, varied_rewards):
    out = tmp_path / "avg"
    final = run_grpo(_recipe(assets, out, max_steps=2, average_from_step=1))  # checkpoints at steps 1 and 2
    one, two, mean = _weights(out / "checkpoint-1"), _weights(out / "checkpoint-2"), _weights(final)
    assert all(torch.allclose(mean[k], (one[k].double() + two[k].double()).div(2).float(), atol=1e-7) for k in mean)
    assert any(not torch.equal(mean[k], two[k]) for k in mean)
    load_model(final, device="cpu")  # a whole checkpoint: config, processor, weights


@pytest.mark.slow
def test_accelerate_launch_with_two_cpu_processes(assets, tmp_path):
    out = tmp_path / "two_proc"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [
        accelerate, "launch", "--config_file", str(REPO / "stvg_lab/recipes/accelerate/cpu_2proc.yaml"),
        "--main_process_port", "29531", "-m", "stvg_lab.train.grpo",
        "--recipe", "tiny_cpu", "--init-from", str(assets["init"]), "--out", str(out), "--max-steps", "2",
        "--set", f"data={assets['data']}", "--set", "per_device_batch_size=2", "--set", "num_generations=2",
        "--set", "max_completion_length=16", "--set", "save_steps=1", "--set", "logging_steps=1",
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    records = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in records] == [1, 2]
    # 2 processes x 2 completions: each optimizer step sees 4 completions, i.e. 2 groups of 2
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert all(math.isfinite(r["loss"]) for r in records)
    load_model(out / "final", device="cpu")
