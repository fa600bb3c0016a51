"""Recipes: the paper's values, strict keys and types, save/load round trip, overrides."""

from __future__ import annotations

from dataclasses import replace

import pytest
import yaml

from stvg_lab.train.recipe import Recipe, load_recipe, parse_overrides, recipe_names


def test_shipped_recipes():
    assert {"paper", "tiny_cpu"} <= set(recipe_names())


# (field, value): every number §4 states, and Eq. 10's λk
PAPER_VALUES = [
    ("learning_rate", 1e-6),  # §4 AdamW lr 1e-6
    ("weight_decay", 0.01),  # §4 weight decay 1e-2
    ("optim", "adamw_torch"),  # §4 AdamW
    ("num_generations", 8),  # §3.3 / §4: 8 rollouts
    ("lambda_k", 0.5),  # §4 / Table 8
    ("fps", 2.0),  # §4 2 frames per second
    ("max_side", 336),  # §4 longer side <= 336
    ("global_batch_size", 128),  # §4 global batch 128
    ("answer_format", "paper"),  # Eq. 1 with <think_bbox>
    ("reward_variant", "full"),  # Eq. 10, all rewards
]


@pytest.mark.parametrize("name, value", PAPER_VALUES)
def test_paper_recipe_values(name, value):
    assert getattr(load_recipe("paper"), name) == value


def test_paper_global_batch_is_reached_through_accumulation():
    r = load_recipe("paper")
    # 2 per device x 64 accumulation on one GPU; 8 GPUs keep 128 with 8 accumulation steps
    assert r.per_device_batch_size * r.gradient_accumulation_steps == 128
    assert [r.accumulation_steps(n) for n in (1, 2, 8)] == [64, 32, 8]
    assert [r.effective_global_batch(n) for n in (1, 2, 8)] == [128, 128, 128]
    with pytest.raises(ValueError, match="world_size"):
        r.accumulation_steps(3)  # 128 / (2 x 3) is not whole


def test_paper_yaml_comments_every_value():
    # Every line holding a value says where it comes from (§ / Eq. / Table) or that it is ours
    from stvg_lab.train.recipe import RECIPES_DIR

    lines = [ln for ln in (RECIPES_DIR / "paper.yaml").read_text().splitlines() if ln and not ln.startswith("#")]
    for key in ("learning_rate", "weight_decay", "global_batch_size", "num_generations", "lambda_k", "fps", "max_side",
                "beta", "epsilon", "temperature"):
        line = next(ln for ln in lines if ln.startswith(key + ":"))
        assert "#" in line and any(tag in line for tag in ("§", "Eq.", "Table", "ours")), line


def test_tiny_cpu_recipe_is_cpu_sized():
    r = load_recipe("tiny_cpu")
    assert r.model == "tiny" and r.dataset == "synthetic"
    assert r.learning_rate > 1e-4 and r.per_device_batch_size <= 8 and 0 < r.max_steps <= 5000
    g = load_recipe("tiny_cpu_grpo")  # the GRPO stage: tiny_cpu plus its own lr, steps and group size
    assert g.name == "tiny_cpu_grpo" and g.tiny_model == r.tiny_model and g.answer_format == r.answer_format
    assert g.learning_rate < r.learning_rate and g.num_generations == 8 and g.per_device_batch_size % g.num_generations == 0
    kwargs = r.training_kwargs(cuda=False)
    # the CPU settings: no bf16, no checkpointing, an explicit learning rate
    assert kwargs["bf16"] is False and kwargs["activation_checkpointing"] is False and kwargs["use_cpu"] is True
    assert kwargs["learning_rate"] == r.learning_rate
    assert kwargs["remove_unused_columns"] is False  # frames come from with_transform


def test_training_kwargs_on_gpu_use_bf16_and_checkpointing():
    kwargs = load_recipe("paper").training_kwargs(cuda=True)
    assert kwargs["bf16"] is True and kwargs["activation_checkpointing"] is True and kwargs["use_cpu"] is False
    assert kwargs["gradient_accumulation_steps"] == 64


def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: 1e-5\nlearnig_rate: 2e-5\n")  # typo
    with pytest.raises(ValueError, match=r"bad\.yaml.*'learnig_rate'"):
        load_recipe(path)


def test_unknown_override_names_key():
    with pytest.raises(ValueError, match=r"overrides.*'lr'"):
        load_recipe("tiny_cpu", lr=1e-3)


# (override, expected message fragment): type and range errors name the field
BAD_VALUES = [
    ({"learning_rate": "fast"}, "'learning_rate' expects float"),  # not a number
    ({"num_generations": 0}, "'num_generations'"),  # below 1
    ({"dataset": "kinetics"}, "'dataset'"),  # not a known dataset
    ({"answer_format": "json"}, "'answer_format'"),  # not a known format
    ({"think_target": "none"}, "'think_target'"),  # no-think is answer_format's job
    ({"lora": "maybe"}, "'lora' expects bool"),  # not a boolean
    ({"warmup_ratio": 1.5}, "'warmup_ratio'"),  # a ratio >= 1
    ({"per_device_batch_size": 3}, "'global_batch_size'"),  # 128 is not a multiple of 3
    ({"seed": None}, "'seed' may not be null"),  # null for a required int
    ({"torch_threads": 0}, "'torch_threads'"),  # zero threads
]


@pytest.mark.parametrize("override, message", BAD_VALUES)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe("paper", **override)


# (overrides of tiny_cpu: max_steps 2500, save_steps 500, save_total_limit 2; expected message): averaging's limits
BAD_AVERAGING = [
    ({"max_steps": -1, "average_from_step": 5}, "'average_from_step'.*max_steps > 0"),  # an epoch count: steps unknown
    ({"average_from_step": 2500}, r"'average_from_step'.*\[1, max_steps=2500\)"),  # the last step alone
    ({"average_from_step": 2001, "save_total_limit": None}, "leaves one checkpoint"),  # only step 2500 is >= 2001
    ({"average_from_step": 1000}, "'save_total_limit'.*4: steps 1000..2500"),  # the limit 2 would delete two of them
    ({"average_from_step": 2000, "lora": True}, "LoRA"),  # adapters, not full checkpoints
]


@pytest.mark.parametrize("override, message", BAD_AVERAGING)
def test_bad_averaging_names_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        load_recipe("tiny_cpu", **override)


# (max_steps, save_steps, average_from_step, averaged steps): save_steps multiples from the first step, and the last step
AVERAGED_STEPS = [
    (18000, 500, 14000, list(range(14000, 18001, 500))),  # the shipped grounding stage: 9 checkpoints
    (10, 4, 3, [4, 8, 10]),  # the last step is saved too, off the save_steps grid
    (10, 5, 5, [5, 10]),
    (10, 5, None, []),  # no averaging
]


@pytest.mark.parametrize("max_steps, save_steps, first, steps", AVERAGED_STEPS)
def test_averaged_steps(max_steps, save_steps, first, steps):
    recipe = load_recipe("tiny_cpu", max_steps=max_steps, save_steps=save_steps, average_from_step=first, save_total_limit=None)
    assert recipe.averaged_steps() == steps


# (raw YAML/CLI value, field, parsed): PyYAML reads 1e-6 as a string; booleans and lists from text
COERCIONS = [
    ("1e-6", "learning_rate", 1e-6),  # no dot: a string to PyYAML
    (3, "learning_rate", 3.0),  # int to float
    ("true", "lora", True),  # CLI text
    ("q_proj,v_proj", "lora_target_modules", ["q_proj", "v_proj"]),  # comma list
    (100.0, "save_steps", 100),  # integral float to int
    (None, "max_length", None),  # optional
]


@pytest.mark.parametrize("raw, name, parsed", COERCIONS)
def test_values_are_coerced_to_field_types(raw, name, parsed):
    assert getattr(load_recipe("paper", **{name: raw}), name) == parsed


def test_save_load_round_trip(tmp_path):
    r = load_recipe("tiny_cpu", learning_rate=3e-4, lora=True, tiny_model={"vocab": "bpe", "hidden_size": 32})
    path = r.save(tmp_path / "run" / "recipe.yaml")
    back = load_recipe(path)
    assert back == r and back.to_dict() == r.to_dict()
    saved = yaml.safe_load(path.read_text())
    assert list(saved) == list(r.to_dict())  # every field written, in declaration order


def test_overrides_apply_and_name_defaults_to_file_stem(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("dataset: synthetic\nmax_steps: 5\n")
    r = load_recipe(path, max_steps=7, output_dir=str(tmp_path / "out"))
    assert (r.name, r.max_steps, r.output_dir) == ("mine", 7, str(tmp_path / "out"))
    assert r.learning_rate == Recipe().learning_rate  # missing fields take the defaults
    assert r.replace(beta=0.0).beta == 0.0 and r.beta == Recipe().beta


def test_unknown_recipe_name_lists_shipped():
    with pytest.raises(FileNotFoundError, match="tiny_cpu"):
        load_recipe("nonexistent")


# (CLI --set items, parsed dict)
OVERRIDE_TEXT = [
    (["learning_rate=1e-5"], {"learning_rate": "1e-5"}),  # YAML 1.1: no dot, a string (coerced later)
    (["lora=true", "beta=0"], {"lora": True, "beta": 0}),  # YAML scalars
    (["lora_target_modules=[q_proj, v_proj]"], {"lora_target_modules": ["q_proj", "v_proj"]}),  # YAML list
    (["system_prompt="], {"system_prompt": None}),  # empty value is null
    (["data=a=b"], {"data": "a=b"}),  # only the first '=' splits
]


@pytest.mark.parametrize("items, parsed", OVERRIDE_TEXT)
def test_parse_overrides(items, parsed):
    assert parse_overrides(items) == parsed


def test_parse_overrides_rejects_missing_equals():
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["learning_rate"])


def test_lora_config():
    assert load_recipe("tiny_cpu").lora_config() is None
    cfg = load_recipe("tiny_cpu", lora=True, lora_r=4).lora_config()
    assert cfg.r == 4 and set(cfg.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj"}


def test_extends_takes_the_base_then_its_own_values(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("dataset: synthetic\nmax_steps: 5\nlearning_rate: 1.0e-3\nbeta: 0.1\n")
    stage = tmp_path / "stage.yaml"
    stage.write_text(f"extends: {base}\nlearning_rate: 1.0e-5\n")
    r = load_recipe(stage, beta=0.0)
    # own value > base value > default; overrides last; the name is the file's, not the base's
    assert (r.name, r.learning_rate, r.max_steps, r.beta) == ("stage", 1e-5, 5, 0.0)


def test_extends_errors_name_the_file(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"extends: {b}\n")
    b.write_text(f"extends: {a}\n")
    with pytest.raises(ValueError, match="cycle"):
        load_recipe(a)
    (tmp_path / "c.yaml").write_text("extends: no_such_recipe\n")
    with pytest.raises(ValueError, match="c.yaml: extends"):
        load_recipe(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text(f"extends: {tmp_path / 'e.yaml'}\n")
    (tmp_path / "e.yaml").write_text("no_such_field: 1\n")
    with pytest.raises(ValueError, match="no_such_field"):
        load_recipe(tmp_path / "d.yaml")


def test_train_commands_default_to_their_stage_recipe():
    import argparse

    from stvg_lab.train.recipe import add_recipe_arguments

    defaults = {stage: add_recipe_arguments(argparse.ArgumentParser(), stage).parse_args([]).recipe for stage in ("sft", "grpo")}
    assert defaults == {"sft": "tiny_cpu", "grpo": "tiny_cpu_grpo"}


def test_the_metric_recipe_is_tiny_cpu_grpo_with_three_overrides():
    # what bench/grpo_sweep.py measured as metric_dapo_spa10 with --set, from tiny_cpu_grpo as it was then (100 steps
    # at temperature 1; 300 at 0.3 since session 25); the recipe must stay that run
    metric = load_recipe("tiny_cpu_grpo_metric")
    then = load_recipe("tiny_cpu_grpo", max_steps=100, temperature=1.0)
    swept = then.replace(reward_variant="viou_metric", loss_type="dapo", reward_scale={"spatial": 10})
    assert replace(metric, name=swept.name) == swept


def test_the_grpo_stage_samples_near_greedy_for_three_times_round_20s_steps():
    # rounds 21-23 (bench/LEARNING.md): at temperature 1 the rollouts score ~65 % of the greedy answers; 0.3, 300 steps
    g = load_recipe("tiny_cpu_grpo")
    assert (g.temperature, g.max_steps, g.learning_rate, g.lr_scheduler_type) == (0.3, 300, 1e-4, "constant")
    assert load_recipe("tiny_cpu").temperature == load_recipe("paper").temperature == 1.0  # the paper's recipe samples the policy as it is


def test_the_polish_recipe_is_tiny_cpu_at_a_third_of_the_rate_without_warm_up():
    # what bench/grpo_sweep.py measured as sft_more_2500_lr3e-4 (LEARNING.md rounds 14-15); the recipe must stay that run
    polish = load_recipe("tiny_cpu_polish")
    swept = load_recipe("tiny_cpu", learning_rate=3e-4, warmup_ratio=0.0, max_steps=2500)
    assert replace(polish, name=swept.name) == swept


def test_trained_answer_format_reads_the_checkpoints_recipe(tmp_path):
    from stvg_lab.train.recipe import trained_answer_format

    assert trained_answer_format(tmp_path, "compact") == "compact"  # no recipe.yaml: the default
    load_recipe("tiny_cpu", answer_format="compact_labels").save(tmp_path / "recipe.yaml")
    assert trained_answer_format(tmp_path, "compact") == "compact_labels"
    # a trainer's checkpoint-<step> holds none: its run folder's is read; another subfolder's parent is not
    for sub, expected in (("checkpoint-1500", "compact_labels"), ("final_copy", "paper"), ("checkpoint-x", "paper")):
        (tmp_path / sub).mkdir()
        assert trained_answer_format(tmp_path / sub, "paper") == expected, sub
    load_recipe("tiny_cpu", answer_format="no_think").save(tmp_path / "checkpoint-1500" / "recipe.yaml")
    assert trained_answer_format(tmp_path / "checkpoint-1500", "paper") == "no_think"  # its own wins


def test_the_ground_recipe_is_the_round_19_stage_averaged_as_in_round_20():
    # what bench/out/round19 ran as tiny_cpu_polish with --set (LEARNING.md rounds 18-19), its last nine checkpoints
    # averaged (round 20); the recipe must stay that run
    ground = load_recipe("tiny_cpu_ground")
    swept = load_recipe("tiny_cpu_polish", learning_rate=1e-3, lr_scheduler_type="constant", aux_frame_cells=False, max_steps=18000,
                        save_steps=500, save_total_limit=None, average_from_step=14000)
    assert replace(ground, name=swept.name) == swept


def test_the_clips_recipe_is_the_rounds_22_23_stage():
    # what bench/out/round24/d12k_10k and round25/clips_10k ran (round 21's 6,000-step d12k resumed with
    # `--set max_steps=10000 --set average_from_step=6000`; the lr is constant, so the same as one 10,000-step run)
    clips = load_recipe("tiny_cpu_clips")
    swept = load_recipe("tiny_cpu_ground", data="data/synth_train12k", max_steps=10000, average_from_step=6000)
    assert replace(clips, name=swept.name) == swept and clips.lr_scheduler_type == "constant" and clips.warmup_ratio == 0
    assert clips.averaged_steps() == list(range(6000, 10001, 500))
