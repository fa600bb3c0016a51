"""The main job (`make demo`) end to end at smoke size: every step runs, the report has every table."""

from __future__ import annotations

import json

import pytest
import torch

from stvg_lab.pipeline import DemoConfig, run_demo


def test_quick_demo_writes_the_report_and_a_rerun_is_cached(tmp_path):
    cfg = DemoConfig(out_dir=tmp_path / "demo", data_dir=tmp_path / "data", quick=True)
    report = run_demo(cfg)
    text = report.read_text()
    for heading in ("Untrained vs SFT vs SFT + GRPO", "Does the model read the video?", "Do the answers carry their own clip?",
                    "Do the box lists fit their span?", "Which object do the boxes land on?", "Reduced ablation grid", "Object scale", "Wall time",
                    "Is each difference more than the test clips' noise?"):
        assert heading in text
    for row in ("untrained stand-in", "SFT + GRPO", "baseline: whole video + mean box", "baseline: gt span + mean box",
                "| SFT | pred span + mean box | 1 |", "| SFT + GRPO | pred span + mean box | 1 |"):
        assert row in text
    assert "| gap: span digits | gap: think box 1 | gap: pred box 1 |" in text
    rewards = text.split("### The reward of these answers")[1].split("## ")[0]
    assert "| R (Eq. 10) |" in rewards and all(f"| {m} | 1 |" in rewards for m in ("untrained stand-in", "SFT", "SFT + GRPO"))
    # the swap control has a row per model: numbers, or why it could not swap (a smoke-size SFT may parse nothing)
    swap = text.split("Do the answers carry their own clip?")[1].split("## ")[0]
    assert "| one constant box |" in swap and "| pred box IoU: own | swapped | one constant box |" in swap
    assert all(f"| {m} |" in swap for m in ("SFT", "SFT + GRPO"))
    counts = text.split("Do the box lists fit their span?")[1].split("## ")[0]
    assert "| consistent (Eq. 4) |" in counts and all(f"| {m} |" in counts for m in ("SFT", "SFT + GRPO"))
    which = text.split("Which object do the boxes land on?")[1].split("## ")[0]
    assert "| frames (clips) with a distractor in view | on the target |" in which and all(f"| {m} |" in which for m in ("SFT", "SFT + GRPO"))
    paired = text.split("Is each difference more than the test clips' noise?")[1].split("## ")[0]
    assert all(f"| {c} | {m} (pred) |" in paired for c in ("SFT + GRPO - SFT", "full - no_think_reward") for m in ("m_tIoU", "m_vIoU"))
    assert "| SFT + GRPO - SFT | R_total |" in paired  # Eq. 10 of the held-out answers, in reward units
    assert f"{cfg.n_eval} clips, runs per arm (a, b): (1, 1)" in paired
    made_on = next(line for line in text.splitlines() if line.startswith("Made on"))  # where the GRPO run trained
    assert f"torch {torch.__version__}" in made_on and torch.backends.cpu.get_cpu_capability() in made_on
    assert (cfg.out_dir / "object_scale.png").stat().st_size > 0
    # the grid's two runs trained side by side where there are two CPUs, each printing into its own worker.log
    from stvg_lab.pipeline import _grid_workers, _workers_phrase

    assert f"The grid's runs trained {_workers_phrase(cfg)}" in text
    logs = sorted((cfg.out_dir / "grid" / "runs").glob("*/worker.log"))
    assert len(logs) == (2 if _grid_workers(cfg) > 1 else 0)
    metrics = json.loads((cfg.out_dir / "eval" / "sft" / "metrics.json").read_text())
    assert metrics["n"] == cfg.n_eval and 0 <= metrics["pred"]["m_tIoU"] <= 1

    # a second run trains nothing: the SFT checkpoint and every grid run are reused
    finals = sorted(p.stat().st_mtime for p in cfg.out_dir.rglob("final/model.safetensors"))
    run_demo(cfg)
    assert sorted(p.stat().st_mtime for p in cfg.out_dir.rglob("final/model.safetensors")) == finals


def test_default_demo_starts_from_the_shipped_checkpoint(tmp_path):
    from dataclasses import replace

    from stvg_lab.data.synth import SynthConfig, generate_synthetic
    from stvg_lab.pipeline import _sft
    from stvg_lab.train.shipped import shipped_checkpoint

    data = generate_synthetic(tmp_path / "data", 2, 0, 2, seed=0, progress=False, workers=1)
    cfg = DemoConfig(out_dir=tmp_path / "demo", data_dir=data)
    assert cfg.from_scratch is False
    final, base = _sft(cfg)
    assert final == shipped_checkpoint() and (base / "config.json").is_file()  # the untrained row: same recipe, same seed
    assert not (cfg.out_dir / "sft" / "final").exists()  # nothing trained
    other = generate_synthetic(tmp_path / "other", 2, 0, 2, seed=0, progress=False, workers=1,
                               config=replace(SynthConfig(), clip_seconds=5.0))
    with pytest.raises(ValueError, match="clip_seconds"):
        _sft(DemoConfig(out_dir=tmp_path / "demo2", data_dir=other))


@pytest.mark.parametrize("argv, workers", [([], None), (["--grid-workers", "1"], 1), (["--grid-workers", "3"], 3)])
def test_demo_cli_passes_the_grid_workers(monkeypatch, tmp_path, argv, workers):
    import stvg_lab.pipeline as pipeline
    from stvg_lab.cli import main

    seen = []

    def fake_run_demo(cfg):
        seen.append(cfg)
        report = tmp_path / "report.md"
        report.write_text("report")
        return report

    monkeypatch.setattr(pipeline, "run_demo", fake_run_demo)
    assert main(["demo", "--out", str(tmp_path / "demo"), *argv]) == 0
    assert seen[0].grid_workers == workers


@pytest.mark.parametrize(
    "variants, seeds, given, cpus, expected",
    [
        (["full", "no_think_reward"], [0], None, 2, 2),  # the demo's grid on this machine: one run per CPU
        (["full", "no_think_reward"], [0], None, 1, 1),  # one CPU: one after the other
        (["full"], [0, 1, 2], None, 16, 3),  # never more workers than runs
        (["full", "no_think_reward"], [0], 1, 16, 1),  # --grid-workers 1
    ],
)
def test_grid_workers(monkeypatch, variants, seeds, given, cpus, expected):
    from stvg_lab.pipeline import _grid_workers

    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    assert _grid_workers(DemoConfig(grid_variants=variants, grid_seeds=seeds, grid_workers=given)) == expected


def test_grid_workers_below_one_are_refused():
    with pytest.raises(ValueError, match="grid_workers must be at least 1"):
        DemoConfig(grid_workers=0)
