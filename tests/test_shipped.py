"""The shipped SFT checkpoint: it is the tiny_cpu recipe's, it loads, it answers, and it refuses another benchmark."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from stvg_lab.answer import parse_answer
from stvg_lab.data.synth import PRESETS, SynthConfig, generate_synthetic, load_synthetic, read_manifest
from stvg_lab.train.recipe import Recipe, load_recipe
from stvg_lab.train.shipped import (
    check_compatible,
    export_checkpoint,
    provenance_differences,
    read_provenance,
    sft_recipe_differences,
    shipped_checkpoint,
    stage_differences,
)



def test_shipped_checkpoint_is_the_tiny_cpu_recipes():
    # a change to tiny_cpu.yaml (or tiny_cpu_polish, _ground, _clips.yaml) that changes SFT must come with a retrained checkpoint (bench/make_shipped_sft.py)
    diffs = stage_differences(read_provenance(shipped_checkpoint()))
    assert "tiny_cpu" in diffs and all(d == [] for d in diffs.values()), f"the shipped recipes and the shipped checkpoint disagree: {diffs}"
    # a curriculum's SFT starts from its reader stage, not the fresh stand-in; nothing else is excused
    run = {"model": "bench/out/curriculum/seed0_synthetic/sft1/final", "seed": 0}
    assert provenance_differences({"recipe": run, "curriculum": {"seed": 0}}, {"model": "tiny", "seed": 0}) == []
    assert provenance_differences({"recipe": run, "curriculum": None}, {"model": "tiny", "seed": 0}) == ["model"]
    assert provenance_differences({"recipe": run, "curriculum": {"seed": 0}}, {"model": "tiny", "seed": 1}) == ["seed"]
    assert sft_recipe_differences({"learning_rate": 1.0, "beta": 9.0}, {"learning_rate": 2.0, "beta": 0.0}) == ["learning_rate"]
    # a field the recorded run lacks (added to Recipe later) counts as its default
    assert sft_recipe_differences({}, {"aux_frame_boxes": False}) == []
    assert sft_recipe_differences({}, {"aux_frame_boxes": True}) == ["aux_frame_boxes"]


def test_the_shipped_weights_are_the_mean_its_recipe_asks_for():
    # the clips stage's final/ is the mean of the checkpoints average_from_step names, each recorded by fingerprint
    provenance = read_provenance(shipped_checkpoint())
    recipe = Recipe(**provenance["recipe"])
    averaged = provenance["clips"]["averaged_from"]
    assert recipe.averaged_steps() == list(range(6000, 10001, 500))
    assert [Path(c["path"]).name for c in averaged] == [f"checkpoint-{s}" for s in recipe.averaged_steps()]
    assert len({c["fingerprint"] for c in averaged}) == len(averaged)  # nine different checkpoints
    # it trained on the 12,000-clip split of the default benchmark (val and test the default's) ...
    assert provenance["clips"]["data"] == recipe.data == load_recipe("tiny_cpu_clips").data
    assert provenance["data"]["counts"] == {"train": 12000, "val": 50, "test": 100}
    # ... continuing the 6,000-step stage shipped in session 24 from its checkpoint-6000 (the one that stage's
    # provenance fingerprinted), whose record is kept ...
    replaced = provenance["clips_replaced"]
    assert replaced["recipe"]["max_steps"] == 6000 and replaced["sha256"].startswith("dc908465")
    assert replaced["record"]["averaged_from"][-1]["fingerprint"] == averaged[0]["fingerprint"]
    # ... from the grounding stage shipped in session 23 (the mean of its checkpoints 14,000-18,000), whose
    # records are kept, with the stage that one replaced (sessions 21-22: its checkpoint-12000)
    ground = Recipe(**provenance["ground_recipe"])
    assert ground.averaged_steps() == list(range(14000, 18001, 500)) and len(provenance["ground"]["averaged_from"]) == 9
    assert provenance["ground_replaced"]["recipe"]["max_steps"] == 12000
    assert provenance["ground_sha256"].startswith("1a5149a5")  # session 23's shipped weights (bench/LEARNING.md round 21)


def test_stage_differences_checks_the_curriculum_behind_polish_rounds():
    tiny, polish = load_recipe("tiny_cpu").to_dict(), load_recipe("tiny_cpu_polish").to_dict()
    curriculum = {"seed": 0, "recipe": {**tiny, "model": "root/sft2/final"}}
    polished = {"recipe": {**polish, "model": "root/polish2/final"}, "curriculum": curriculum, "polish": [{"round": "polish1"}]}
    assert stage_differences(polished) == {"tiny_cpu_polish": [], "tiny_cpu": []}
    assert stage_differences({**polished, "recipe": {**polish, "learning_rate": 1e-3}}) == {"tiny_cpu_polish": ["learning_rate"], "tiny_cpu": []}
    bad_curriculum = {**curriculum, "recipe": {**tiny, "max_steps": 100}}
    assert stage_differences({**polished, "curriculum": bad_curriculum}) == {"tiny_cpu_polish": [], "tiny_cpu": ["max_steps"]}
    # no polish rounds: the one stage is the curriculum's (or a plain run's) tiny_cpu
    assert stage_differences({"recipe": tiny, "curriculum": None, "polish": None}) == {"tiny_cpu": []}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("shipped") / "data", 2, 0, 2, seed=0, progress=False, workers=1)


def test_shipped_checkpoint_loads_and_answers_in_format(data):
    from stvg_lab.infer import predict
    from stvg_lab.model import load_model

    check_compatible(shipped_checkpoint(), data)  # the default benchmark at any split size
    model, processor = load_model(shipped_checkpoint(), device="cpu")
    samples = load_synthetic(data, "test")
    preds = predict(model, processor, samples, fmt="compact", progress=False)
    # greedy answers of the SFT'd stand-in parse (bench/LEARNING.md: 100 % on the test split)
    assert [parse_answer(p.text, "compact").error for p in preds] == [None, None]


def test_another_benchmark_is_refused_naming_the_fields(tmp_path):
    other = generate_synthetic(tmp_path / "other", 1, 0, 0, seed=0, progress=False, workers=1,
                               config=replace(SynthConfig(), width=224, height=224))
    with pytest.raises(ValueError, match=r"config fields: height, width.*--from-scratch"):
        check_compatible(shipped_checkpoint(), other)
    spread = generate_synthetic(tmp_path / "spread", 1, 0, 0, seed=0, progress=False, workers=1, config=PRESETS["spread"])
    with pytest.raises(ValueError, match=r"config fields: max_centre_share\)"):
        check_compatible(shipped_checkpoint(), spread)  # a field the checkpoint's provenance lacks still counts
    seed1 = generate_synthetic(tmp_path / "seed1", 1, 0, 0, seed=1, progress=False, workers=1)
    with pytest.raises(ValueError, match="seed"):
        check_compatible(shipped_checkpoint(), seed1)


def test_export_writes_provenance_and_nothing_half_done(tmp_path, data):
    from stvg_lab.model import build_tiny_model

    run = tmp_path / "run"
    final = build_tiny_model(run / "final")
    load_recipe("tiny_cpu").save(run / "recipe.yaml")
    dest = export_checkpoint(final, data, tmp_path / "ship", {"command": "x"})
    prov = json.loads((dest / "provenance.json").read_text())
    assert prov["command"] == "x" and prov["recipe"]["name"] == "tiny_cpu" and prov["data"]["seed"] == 0
    assert prov["data"]["encoder_options"] == read_manifest(data)["encoder_options"]  # which pixels it saw (round 10)
    assert (dest / "model.safetensors").is_file() and not (dest / "optimizer.pt").exists()
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        export_checkpoint(tmp_path / "empty", data, tmp_path / "ship2")
    assert not (tmp_path / "ship2").exists() and not list(tmp_path.glob(".ship2.partial-*"))


def test_stage_differences_checks_the_polish_round_behind_a_ground_stage():
    tiny, polish = load_recipe("tiny_cpu").to_dict(), load_recipe("tiny_cpu_polish").to_dict()
    ground = load_recipe("tiny_cpu_ground").to_dict()
    curriculum = {"seed": 0, "recipe": {**tiny, "model": "root/sft3/final"}}
    # the stage picks the recipe: a ground stage run as `--recipe tiny_cpu_polish --set ...` is still checked as tiny_cpu_ground
    grounded = {"recipe": {**ground, "name": "tiny_cpu_polish", "model": "shipped"}, "curriculum": curriculum, "polish": [{"round": "polish1"}],
                "polish_recipe": {**polish, "model": "root/polish2/final"}, "ground": {"round": "ground"}}
    assert stage_differences(grounded) == {"tiny_cpu_ground": [], "tiny_cpu_polish": [], "tiny_cpu": []}
    assert stage_differences({**grounded, "polish_recipe": {**polish, "warmup_ratio": 0.05}})["tiny_cpu_polish"] == ["warmup_ratio"]
    assert stage_differences({**grounded, "recipe": {**ground, "aux_frame_cells": True}})["tiny_cpu_ground"] == ["aux_frame_cells"]
    # after a clips stage the grounding stage's recipe is ground_recipe, and the clips stage's is checked as tiny_cpu_clips
    clips = load_recipe("tiny_cpu_clips").to_dict()
    clipped = {**grounded, "recipe": {**clips, "model": "shipped"}, "ground_recipe": grounded["recipe"], "clips": {"round": "clips"}}
    assert stage_differences(clipped) == {"tiny_cpu_clips": [], "tiny_cpu_ground": [], "tiny_cpu_polish": [], "tiny_cpu": []}
    assert stage_differences({**clipped, "recipe": {**clips, "max_steps": 18000}})["tiny_cpu_clips"] == ["max_steps"]
    assert stage_differences({**clipped, "ground_recipe": {**ground, "learning_rate": 3e-4}})["tiny_cpu_ground"] == ["learning_rate"]
