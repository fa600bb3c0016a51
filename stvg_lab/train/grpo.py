"""GRPO stage of STVG-o1 (§3.3, Eq. 10-12) on stock TRL 1.16 with our five reward functions.

:func:`run_grpo` wires a :class:`~stvg_lab.train.recipe.Recipe` into TRL:

* policy: ``recipe.init_from``, an SFT checkpoint for the CPU stand-in (a random model cannot
  emit the answer format, so every reward would be 0 and every advantage 0) or ``"base"`` for a
  real Qwen2.5-VL, as in the paper. It is loaded with :func:`stvg_lab.model.load_model`, which
  binds Qwen's text-position rule; ``VideoGRPOTrainer`` gives the same rule to the reference model.
* rewards: :func:`stvg_lab.reward_variants.reward_setup` returns the format, consistency, temporal,
  spatial and think rewards (Eq. 3-9) with ``reward_weights = [1, 1, 1, 1, λk]``. TRL sums them
  with these weights into ``R`` (Eq. 10), then normalises ``R`` within each group of
  ``num_generations`` completions (Eq. 11, ``scale_rewards="group"``, δ = 1e-4 in TRL). Not in the
  paper: ``reward_aggregation: normalize_then_sum`` (GDPO) normalises each reward within its group
  before the weighted sum instead (``recipe.REWARD_AGGREGATIONS``). Not in the paper either:
  ``reward_scale`` multiplies named terms' weights (``{format: 3}``), for ablations.
* objective: ``loss_type="grpo"`` is Eq. 12's ``1/n Σ_i`` of per-sequence token means, with the
  clip ``ε = recipe.epsilon`` and the KL weight ``β = recipe.beta``. The paper gives neither
  value; the recipes set them explicitly (``paper.yaml`` documents the choice).
* trainer: :class:`~stvg_lab.train.grpo_video.VideoGRPOTrainer`, so the old, reference and loss
  forwards see the video. :class:`STVGGRPOTrainer` adds per-reward group-spread metrics.

Run layout (``recipe.output_dir``)::

    recipe.yaml          the complete recipe, written before training
    environment.jsonl    one line per start or resume: versions, CPU kernels, GPUs, commit (runs.record_environment)
    log.jsonl            one JSON object per logging step (JsonlLogCallback)
    checkpoint-<step>/   every save_steps; a killed run resumes from the last one (resume=True)
    adapter/             LoRA runs only: the trained adapter
    final/               the trained policy, loadable by stvg_lab.model.load_model

Logged every ``logging_steps`` (TRL's names, plus ours marked *):

* ``rewards/<name>/mean`` and ``rewards/<name>/std`` per reward function (std over the batch);
* ``rewards/<name>/group_std``* (mean within-group std: the spread that makes an advantage) and
  ``rewards/<name>/frac_zero_std``* (fraction of groups where this component is constant);
* ``reward``, ``reward_std``, ``frac_reward_zero_std`` (groups whose total ``R`` is constant, i.e.
  whose advantages are all 0 and which teach nothing);
* ``completions/mean_length`` (and min/max/clipped ratio), ``kl`` (only when ``beta > 0``: TRL
  does not compute it otherwise), ``entropy``, ``clip_ratio/*``, ``loss``, ``learning_rate``.

Scaling out: ``accelerate launch --config_file stvg_lab/recipes/accelerate/<cfg>.yaml -m
stvg_lab.train.grpo --recipe ... --init-from ... --out ...`` with ``cpu_2proc.yaml`` (tested),
``multi_gpu.yaml``, ``zero2.yaml``, ``zero3.yaml`` or ``fsdp.yaml``. vLLM generation
(``use_vllm``) is passed to GRPOConfig but refused: ``VideoGRPOTrainer`` cannot give vLLM the video
in TRL 1.16.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stvg_lab.train.grpo_video import VideoGRPOTrainer
from stvg_lab.train.recipe import Recipe, add_recipe_arguments, recipe_from_args
from stvg_lab.train.runs import FINAL_DIR, FullCheckpointResume, average_final, record_environment, resume_point
from stvg_lab.train.sft import RECIPE_FILE, apply_prompt_order, freeze_vision_tower, load_for_training, resolve_model_path, save_run_recipe, world_size

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
ZERO_STD_ATOL = 1e-8
"""A group's spread counts as zero below this (TRL uses ``torch.isclose(std, 0)``, atol 1e-8)."""


def group_spread_metrics(rewards: np.ndarray, num_generations: int, names: Sequence[str]) -> dict[str, float]:
    """Per reward function, the within-group spread that Eq. 11's advantage is made of.

    ``rewards`` is ``(N, F)``: one row per completion, groups of ``num_generations``
    consecutive rows (TRL's order), one column per reward function named in ``names``. Returns
    ``rewards/<name>/group_std``: the mean over groups of the (Bessel-corrected, like TRL's
    ``nanstd``) std within each group, and ``rewards/<name>/frac_zero_std``: the fraction of
    groups where that component is the same for every completion. NaN rewards (a function that
    returned None) are ignored; a group with fewer than two values has spread 0.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2 or rewards.shape[1] != len(names):
        raise ValueError(f"rewards must be (N, {len(names)}) for reward functions {list(names)}; got {rewards.shape}")
    if num_generations < 1 or rewards.shape[0] % num_generations:
        raise ValueError(f"{rewards.shape[0]} completions do not split into groups of num_generations={num_generations}")
    grouped = rewards.reshape(-1, num_generations, len(names))  # (groups, G, F)
    valid = ~np.isnan(grouped)
    count = valid.sum(axis=1)  # (groups, F)
    mean = np.nansum(grouped, axis=1) / np.maximum(count, 1)
    squares = np.where(valid, (grouped - mean[:, None, :]) ** 2, 0.0).sum(axis=1)
    std = np.sqrt(np.divide(squares, count - 1, out=np.zeros_like(squares), where=count > 1))  # (groups, F)
    out: dict[str, float] = {}
    for j, name in enumerate(names):
        out[f"rewards/{name}/group_std"] = float(std[:, j].mean())
        out[f"rewards/{name}/frac_zero_std"] = float((std[:, j] <= ZERO_STD_ATOL).mean())
    return out


def greedy_metrics(rewards: np.ndarray, weights: Sequence[float], num_generations: int) -> dict[str, float]:
    """How the greedy answer (row 0 of each group, ``greedy_in_group``) fares against its group's samples.

    ``rewards`` is ``(N, F)`` in TRL's group order and ``weights`` Eq. 10's ``F`` weights (NaN counts 0,
    as in TRL's ``nansum``). Returns ``greedy/reward``: the greedy answers' mean weighted reward,
    ``greedy/minus_samples``: its mean margin over the mean of the other rows of its group, and
    ``greedy/frac_beaten``: the fraction of groups where some sample scores above the greedy answer
    (only those groups can push the policy past its greedy answer).
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    if num_generations < 2 or rewards.ndim != 2 or rewards.shape[0] % num_generations:
        raise ValueError(f"rewards {rewards.shape} do not split into groups of num_generations={num_generations} >= 2")
    total = np.nan_to_num(rewards) @ np.asarray(weights, dtype=np.float64)  # (N,)
    grouped = total.reshape(-1, num_generations)  # (groups, G); column 0 is the greedy answer
    greedy, samples = grouped[:, 0], grouped[:, 1:]
    return {
        "greedy/reward": float(greedy.mean()),
        "greedy/minus_samples": float((greedy - samples.mean(axis=1)).mean()),
        "greedy/frac_beaten": float((samples.max(axis=1) > greedy + ZERO_STD_ATOL).mean()),
    }


class STVGGRPOTrainer(FullCheckpointResume, VideoGRPOTrainer):
    """``VideoGRPOTrainer`` that logs each reward component's within-group spread and resumes strictly.

    TRL logs each component's mean and batch std, and the zero-spread fraction of the total
    only. ``_calculate_rewards`` returns the rewards gathered from every process, ``(N, F)`` in
    group order, so it is the one place where groups are whole even when a group's completions
    were scored on different processes (a reward-function wrapper sees only its own slice).
    """

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)  # (N, F)
        mode = "train" if self.model.training else "eval"
        n = self.num_generations if mode == "train" else self.num_generations_eval
        rewards = rewards_per_func.detach().float().cpu().numpy()  # (N, F)
        spread = group_spread_metrics(rewards, n, self.reward_func_names)
        if self.greedy_in_group and n > 1:
            spread.update(greedy_metrics(rewards, self.reward_weights.detach().float().cpu().numpy(), n))
        for key, value in spread.items():
            self._metrics[mode][key].append(value)
        return rewards_per_func


def grpo_config(recipe: Recipe, cuda: bool | None = None, world: int | None = None):
    """TRL ``GRPOConfig`` for ``recipe`` (Eq. 11-12 settings and the shared training settings).

    ``cuda`` None detects CUDA; on CPU this gives ``use_cpu``, ``bf16=False``, no checkpointing
    and the recipe's learning rate (``Recipe.training_kwargs``). ``per_device_batch_size``
    counts completions, as in TRL, so a generation round holds ``per_device_batch_size ×
    gradient_accumulation × world / num_generations`` prompts.
    """
    from trl import GRPOConfig

    from stvg_lab.reward_variants import reward_setup

    world = world_size() if world is None else world
    kwargs = recipe.training_kwargs(cuda=cuda, world_size=world)
    kwargs.update(
        num_generations=recipe.num_generations,
        beta=float(recipe.beta),
        epsilon=float(recipe.epsilon),
        temperature=float(recipe.temperature),
        max_completion_length=recipe.max_completion_length,
        num_iterations=recipe.num_iterations,
        loss_type=recipe.loss_type,
        scale_rewards=recipe.scale_rewards,
        multi_objective_aggregation=recipe.reward_aggregation,
        use_vllm=recipe.use_vllm,
        vllm_mode=recipe.vllm_mode,
        vllm_gpu_memory_utilization=float(recipe.vllm_gpu_memory_utilization),
        log_completions=recipe.log_completions,
        reward_weights=reward_setup(recipe.reward_variant, recipe.lambda_k, recipe.reward_scale)[1],  # Eq. 10: [1, 1, 1, 1, λk]
    )
    generation_batch = recipe.per_device_batch_size * kwargs["gradient_accumulation_steps"] * world
    if generation_batch % recipe.num_generations:
        raise ValueError(
            f"recipe {recipe.name!r}: a generation round holds per_device_batch_size × gradient_accumulation_steps × "
            f"processes = {recipe.per_device_batch_size} × {kwargs['gradient_accumulation_steps']} × {world} = "
            f"{generation_batch} completions, not a multiple of num_generations={recipe.num_generations}; change "
            "per_device_batch_size or num_generations"
        )
    return GRPOConfig(**kwargs)


def _check_supported(recipe: Recipe) -> None:
    """Refuse, before anything is loaded, what this stage does not implement."""
    if recipe.use_vllm:
        raise NotImplementedError(
            f"recipe {recipe.name!r}: use_vllm=true is passed to GRPOConfig, but VideoGRPOTrainer refuses vLLM: in "
            "TRL 1.16 the vLLM path receives images only and would sample without the video. Set use_vllm=false "
            "(generation then runs in transformers)."
        )
    if recipe.lora and os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE") == "3":
        raise NotImplementedError(
            f"recipe {recipe.name!r}: LoRA with DeepSpeed ZeRO-3 is not supported here (the final checkpoint merges "
            "the adapter, which needs unsharded weights). Use zero2.yaml, fsdp.yaml or multi_gpu.yaml with LoRA."
        )


def init_checkpoint(recipe: Recipe) -> Path:
    """The checkpoint the policy starts from: ``recipe.init_from`` when it is a path, the base model for ``"base"``.

    ``"base"`` is ``recipe.model`` (the paper's setting), or for ``model: tiny`` the stand-in built
    once into ``output_dir/base`` (``stvg_lab.train.sft.resolve_model_path``); a random stand-in
    cannot emit the answer format, so its rewards are all 0 until it has been SFT'd.
    """
    if recipe.init_from == "base":
        return Path(resolve_model_path(recipe, recipe.output_dir))
    path = Path(recipe.init_from).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"recipe {recipe.name!r}: init_from={recipe.init_from!r} is not a checkpoint directory (no config.json); "
            "pass the final/ folder of an SFT run (stvg-lab train sft) or init_from=base"
        )
    return path


def save_final(trainer: Any, recipe: Recipe, out: str | Path) -> Path:
    """Write the trained policy, its processor and the recipe to ``out/final``; return that path.

    Full fine-tuning goes through ``trainer.save_model``, which gathers ZeRO-3/FSDP shards. With
    LoRA the adapter goes to ``out/adapter`` and the merged weights to ``final``, so ``final`` is a
    plain checkpoint for ``stvg_lab.model.load_model`` (ZeRO-3 + LoRA is refused up front).
    Call it on every process.
    """
    out = Path(out)
    final = out / FINAL_DIR
    if trainer.is_world_process_zero() and final.exists():
        shutil.rmtree(final)
    trainer.accelerator.wait_for_everyone()
    if not recipe.lora:
        trainer.save_model(str(final))
    elif trainer.is_world_process_zero():
        model = trainer.accelerator.unwrap_model(trainer.model)
        model.save_pretrained(out / ADAPTER_DIR)
        model.merge_and_unload().save_pretrained(final)
        trainer.processing_class.save_pretrained(final)
    if trainer.is_world_process_zero():
        recipe.save(final / RECIPE_FILE)
    trainer.accelerator.wait_for_everyone()
    return final


def run_grpo(recipe: Recipe, resume: bool = False, callbacks: Sequence[Any] = ()) -> Path:
    """Train ``recipe``'s policy with GRPO (Eq. 10-12) and return ``output_dir/final`` (loadable by ``load_model``).

    ``resume=True`` continues from the last ``checkpoint-<step>`` of ``recipe.output_dir``
    (weights, optimizer, scheduler, RNG, data position) up to the recipe's ``max_steps``; it
    raises FileNotFoundError when there is none. Without it, a run directory that already holds
    checkpoints or ``final/`` raises FileExistsError rather than mixing two runs. ``callbacks``
    are extra ``transformers.TrainerCallback`` objects (the tests use one to kill a run).
    """
    import torch
    from stvg_lab.reward_variants import reward_setup
    from stvg_lab.train.dataset import ClipCache, build_grpo_dataset, load_samples
    from stvg_lab.train.logging import JsonlLogCallback

    _check_supported(recipe)
    out = Path(recipe.output_dir)
    checkpoint = resume_point(out, resume)

    recipe.apply_torch_threads()
    cuda = torch.cuda.is_available()
    config = grpo_config(recipe, cuda)
    funcs = reward_setup(recipe.reward_variant, recipe.lambda_k, recipe.reward_scale)[0]  # their weights are in config
    # Rank 0 first: with init_from=base and model=tiny it builds the stand-in the others then load.
    with config.main_process_first(local=False, desc="GRPO set-up"):
        if config.process_index == 0:
            out.mkdir(parents=True, exist_ok=True)
            save_run_recipe(recipe, out)
            record_environment(out, checkpoint)
        init = init_checkpoint(recipe)
    model, processor = load_for_training(init, cuda)
    if not recipe.train_vision_tower:
        logger.info("GRPO %s: vision tower frozen (%d parameters)", recipe.name, freeze_vision_tower(model))
    apply_prompt_order(processor, recipe)
    samples = load_samples(recipe, recipe.train_split)
    dataset = build_grpo_dataset(samples, recipe, ClipCache.from_recipe(recipe))
    trainer = STVGGRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=recipe.lora_config(),
        callbacks=[JsonlLogCallback(out), *callbacks],
        greedy_in_group=recipe.greedy_in_group,
    )
    logger.info(
        "GRPO %s from %s: %d prompts x %d generations, %d completions per optimizer step, beta=%g, epsilon=%g, "
        "lr=%g, reward weights %s%s",
        recipe.name, init, len(samples), recipe.num_generations,
        config.per_device_train_batch_size * config.gradient_accumulation_steps * config.world_size,
        recipe.beta, recipe.epsilon, recipe.learning_rate,
        dict(zip(trainer.reward_func_names, config.reward_weights)), f"; resuming from {checkpoint}" if checkpoint else "",
    )
    trainer.train(resume_from_checkpoint=checkpoint)
    final = average_final(trainer, recipe, out) or save_final(trainer, recipe, out)  # the mean of the last checkpoints, or the last weights
    logger.info("GRPO %s stopped at step %d of %d; final checkpoint %s", recipe.name, trainer.state.global_step,
                trainer.state.max_steps, final)
    return final


def add_grpo_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``stvg-lab train grpo`` options, also ``python -m stvg_lab.train.grpo`` (:func:`~stvg_lab.train.recipe.add_recipe_arguments`)."""
    return add_recipe_arguments(parser, "grpo")


def grpo_command(args: argparse.Namespace) -> int:
    """``stvg-lab train grpo``: run :func:`run_grpo` from parsed :func:`add_grpo_arguments` options."""
    final = run_grpo(recipe_from_args(args), resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"GRPO final checkpoint: {final}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``python -m stvg_lab.train.grpo`` and ``accelerate launch -m stvg_lab.train.grpo``."""
    parser = add_grpo_arguments(argparse.ArgumentParser(prog="stvg_lab.train.grpo", description=__doc__.splitlines()[0]))
    args = parser.parse_args(argv)
    # Under accelerate launch every process runs this; only rank 0 reports progress.
    level = logging.INFO if int(os.environ.get("RANK", "0")) == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return grpo_command(args)


if __name__ == "__main__":
    sys.exit(main())
