"""The SFT baseline (Table 5, "SFT"): stock ``trl.SFTTrainer`` on video + query -> serialised answer.

:func:`run_sft` trains one recipe (``stvg_lab.train.recipe``) and returns the final checkpoint
directory, which ``stvg_lab.model.load_model`` reads like any Qwen2.5-VL checkpoint. The run
directory (``recipe.output_dir``) holds::

    recipe.yaml          the complete recipe, written before training starts
    recipe.before-resume-<k>.yaml   the previous recipe, when a resume changed it
    environment.jsonl    one line per start or resume: versions, CPU kernels, GPUs, commit (runs.record_environment)
    base/                the CPU stand-in (only when model == "tiny"; built once, reused on resume)
    checkpoint-<step>/   every save_steps optimizer steps (model, optimizer, scheduler, RNG, trainer state)
    log.jsonl, log.csv   one record per logging step (stvg_lab.train.logging)
    final/               the trained model + processor + recipe.yaml (load_model(final))
    adapter/             the LoRA adapter alone (only with lora: true)

What the trainer sees (``docs/trl_video_notes.md``): the dataset of
``stvg_lab.train.dataset.build_sft_dataset`` (``messages`` + empty ``images``, frames attached by
``with_transform``), ``assistant_only_loss=True`` (loss on the answer and its ``<|im_end|>\\n``
only), ``remove_unused_columns=False``. The SFT target, including what ``<think_bbox>`` holds
(``think_target``), is documented in ``stvg_lab.train.dataset``. Device settings come from
:meth:`Recipe.training_kwargs`: on CPU ``use_cpu``, ``bf16=False``, no activation checkpointing and
the recipe's learning rate; on GPU bf16 weights and autocast, checkpointing per the recipe. The
loss is TRL's mean over the batch's answer tokens, or with ``sft_loss: row`` the mean over rows of
each row's token mean (:func:`row_mean_loss`, for auxiliary rows whose answers are a few tokens).

LoRA (``lora: true``): peft wraps the language model's ``lora_target_modules``; at the end the
adapter is saved alone to ``adapter/`` and *merged* into the weights saved in ``final/``, so
``final/`` is a plain checkpoint that inference and GRPO's ``init_from`` load without peft.

Resume: ``run_sft(recipe, resume=True)`` continues from the last ``checkpoint-*`` of the run
directory (model, optimizer, scheduler, data order, RNG), up to the recipe's ``max_steps``, which
may be larger than the first run's. Without ``resume`` an existing run directory that holds
checkpoints or ``final/`` is refused rather than overwritten.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

from stvg_lab.model_parts import freeze_parts
from stvg_lab.train.recipe import Recipe, add_recipe_arguments, load_recipe, recipe_from_args
from stvg_lab.train.runs import FINAL_DIR, FullCheckpointResume, average_final, record_environment, resume_point

logger = logging.getLogger(__name__)

ADAPTER_DIR = "adapter"
BASE_DIR = "base"
RECIPE_FILE = "recipe.yaml"


def world_size() -> int:
    """Number of training processes (``WORLD_SIZE`` as set by ``accelerate launch`` / ``torchrun``; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_model_path(recipe: Recipe, run_dir: str | Path) -> Path:
    """The checkpoint the run starts from: ``recipe.model``, or for ``"tiny"`` the stand-in in ``run_dir/base``.

    The stand-in is built once with ``recipe.tiny_model`` (``build_tiny_model`` kwargs: ``vocab``,
    ``seed``, size knobs) and reused when the run resumes.
    """
    if recipe.model != "tiny":
        from stvg_lab.model import resolve_checkpoint

        return resolve_checkpoint(recipe.model)
    base = Path(run_dir) / BASE_DIR
    if not (base / "config.json").is_file():
        from stvg_lab.model import build_tiny_model

        knobs = dict(recipe.tiny_model)
        build_tiny_model(base, vocab=knobs.pop("vocab", "bpe"), seed=knobs.pop("seed", recipe.seed), **knobs)
    return base


def load_for_training(path: str | Path, cuda: bool):
    """``(model, processor)`` for a trainer: loaded on CPU (the trainer moves it), bf16 + flash/sdpa on CUDA, fp32 on CPU.

    Loading on CPU first matters with several processes: each would otherwise place a full
    copy on ``cuda:0`` before the trainer moves it to its own device.
    """
    import torch

    from stvg_lab.model import load_model

    attn = "flash_attention_2" if cuda and importlib.util.find_spec("flash_attn") is not None else "sdpa"
    return load_model(path, device="cpu", dtype=torch.bfloat16 if cuda else torch.float32, attn_implementation=attn)


def freeze_vision_tower(model: Any) -> int:
    """Stop gradients into the ViT of a Qwen2.5-VL (patch embedding and blocks, not the merger); returns the frozen count.

    Why for the CPU stand-in: trained from scratch at the stand-in's lr, the ViT drifts to a
    near-constant output (bench/LEARNING.md), so the LLM never learns to read it. A frozen random
    ViT keeps the pixels' information (random features) while the merger learns the mapping into
    the LLM, as real VLM fine-tuning often freezes the pretrained ViT.
    """
    return freeze_parts(model, ["vit"])


def apply_prompt_order(processor: Any, recipe: Recipe) -> None:
    """Give ``processor`` our chat template in ``recipe.prompt_order`` (None: keep the checkpoint's).

    The template is saved with every checkpoint, so inference, GRPO and vLLM then ask the trained
    model in the order it learned (``stvg_lab.processor.stvg_chat_template``).
    """
    from stvg_lab.processor import stvg_chat_template

    if recipe.prompt_order is not None:
        processor.chat_template = stvg_chat_template(text_first=recipe.prompt_order == "text_first")


def row_mean_loss(log_probs: Any, label_mask: Any, accumulation: int = 1) -> Any:
    """Recipe ``sft_loss: row``: the mean over rows of each row's mean answer-token NLL.

    ``log_probs``, ``label_mask``: ``(B, L-1)`` next-token log-probabilities and answer mask, as
    TRL's fused LM head returns them. TRL's own loss divides the summed NLL by the batch's answer
    tokens, so a row weighs as much as its answer is long: an ``aux_frame_cells`` answer (``"12"``
    and ``<|im_end|>``) beside a ~230-token grounding answer gets ~2 % of the gradient. Here each
    row with answer tokens counts once. ``accumulation``: micro-batches per optimizer step when
    the Trainer leaves the averaging over them to the loss (it does when it passes
    ``num_items_in_batch``); 1 otherwise.
    """
    mask = label_mask.to(log_probs.dtype)
    rows = mask.sum(dim=1)  # (B,) answer tokens per row
    if not bool((rows > 0).any()):  # no answer token in this micro-batch (truncated): zero, with a graph
        return log_probs.sum() * 0.0
    per_row = -(log_probs * mask).sum(dim=1)[rows > 0] / rows[rows > 0]
    return per_row.sum() / (per_row.numel() * accumulation)


class RowMeanLoss:
    """Mixin for ``trl.SFTTrainer`` (pinned 1.16): with ``row_loss`` set, train on :func:`row_mean_loss`.

    TRL's ``compute_loss`` still runs its one forward (fused LM head) and logs its metrics; a
    forward hook keeps that forward's per-token outputs, and the row mean replaces the token mean
    TRL computed from them. No second forward, no copy of TRL's loss code. A call that asks for
    the outputs (evaluation with ``compute_metrics``) keeps TRL's token mean.
    """

    row_loss: bool = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if not self.row_loss or return_outputs:
            return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
        seen: list[Any] = []
        handle = model.register_forward_hook(lambda module, args, out: seen.append(out))
        try:
            super().compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
        finally:
            handle.remove()
        out = seen[-1]
        accumulation = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        return row_mean_loss(out.log_probs, out.label_mask, accumulation)


def _sft_trainer_class():
    from trl import SFTTrainer

    class ResumableSFTTrainer(FullCheckpointResume, RowMeanLoss, SFTTrainer):
        """``trl.SFTTrainer`` whose resume restores Qwen2.5-VL's weights (:class:`FullCheckpointResume`)
        and that can average the loss per row (:class:`RowMeanLoss`)."""

    return ResumableSFTTrainer


def save_run_recipe(recipe: Recipe, run_dir: str | Path) -> Path:
    """Write ``run_dir/recipe.yaml``; an existing different one is kept as ``recipe.before-resume-<k>.yaml``."""
    run_dir = Path(run_dir)
    path = run_dir / RECIPE_FILE
    if path.is_file():
        old = load_recipe(path)
        if old.to_dict() != recipe.to_dict():
            changed = sorted(k for k, v in recipe.to_dict().items() if old.to_dict().get(k) != v)
            k = 1
            while (run_dir / f"recipe.before-resume-{k}.yaml").exists():
                k += 1
            path.rename(run_dir / f"recipe.before-resume-{k}.yaml")
            logger.info("%s: recipe changed on resume (%s); previous kept as recipe.before-resume-%d.yaml", run_dir, ", ".join(changed), k)
    return recipe.save(path)


# Trainer shuffles epoch e with the permutation seeded data_seed + e (accelerate's SeedableRandomSampler),
# and data_seed defaults to seed: seed k's epoch 0 is then seed k-1's epoch 1, and two "seeds" of a
# 4-epoch run share 3 of their 4 orders (bench/LEARNING.md round 20). A stride keeps seed 0's order
# (every shipped run) and gives other seeds disjoint orders for their first DATA_SEED_STRIDE epochs.
DATA_SEED_STRIDE = 1_000_003


def sft_data_seed(seed: int) -> int:
    """The seed of the SFT data order of a run with recipe ``seed`` (0 stays 0)."""
    return seed * DATA_SEED_STRIDE


def sft_config(recipe: Recipe, cuda: bool | None = None):
    """The ``trl.SFTConfig`` of ``recipe`` (:meth:`Recipe.training_kwargs` plus SFT's own settings)."""
    from trl import SFTConfig

    return SFTConfig(
        **recipe.training_kwargs(cuda=cuda, world_size=world_size()),
        data_seed=sft_data_seed(recipe.seed),
        assistant_only_loss=True,  # loss on the answer (+ <|im_end|>\n) only
        max_length=recipe.max_length,
        packing=False,  # TRL refuses packing for vision datasets
    )


def run_sft(recipe: Recipe, resume: bool = False, callbacks: Sequence[Any] = ()) -> Path:
    """Train ``recipe`` with ``trl.SFTTrainer`` and return ``<output_dir>/final`` (loadable by ``load_model``).

    ``final`` holds the last step's weights, or with ``average_from_step`` the mean of the run's last
    checkpoints (:func:`~stvg_lab.train.runs.average_final`).

    ``resume=True`` continues from the last checkpoint of ``output_dir`` (a fresh start, with a
    warning, when there is none). ``callbacks`` are extra ``TrainerCallback``s (tests use one to
    stop a run). Raises FileExistsError when ``output_dir`` already holds checkpoints or a final
    model and ``resume`` is False.
    """
    import torch
    from stvg_lab.train.dataset import ClipCache, build_sft_dataset, load_samples
    from stvg_lab.train.logging import JsonlLogCallback

    run_dir = Path(recipe.output_dir)
    checkpoint = resume_point(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    if int(os.environ.get("RANK", "0")) == 0:  # one writer when several processes train
        save_run_recipe(recipe, run_dir)

    recipe.apply_torch_threads()
    if int(os.environ.get("RANK", "0")) == 0:
        record_environment(run_dir, checkpoint)
    cuda = torch.cuda.is_available()
    model_path = resolve_model_path(recipe, run_dir)
    model, processor = load_for_training(model_path, cuda)
    if not recipe.train_vision_tower:
        logger.info("SFT %s: vision tower frozen (%d parameters)", recipe.name, freeze_vision_tower(model))
    apply_prompt_order(processor, recipe)
    samples = load_samples(recipe, recipe.train_split)
    dataset = build_sft_dataset(samples, recipe, ClipCache.from_recipe(recipe))
    args = sft_config(recipe, cuda)
    logger.info(
        "SFT %s: %d samples, global batch %d (%d per device x %d accumulation x %d processes), lr %g, %s",
        recipe.name, len(samples), args.per_device_train_batch_size * args.gradient_accumulation_steps * world_size(),
        args.per_device_train_batch_size, args.gradient_accumulation_steps, world_size(), args.learning_rate,
        "bf16 on CUDA" if args.bf16 else "fp32 on CPU" if not cuda else "fp32 on CUDA",
    )
    trainer = _sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        peft_config=recipe.lora_config(),
        callbacks=[JsonlLogCallback(run_dir), *callbacks],
    )
    trainer.row_loss = recipe.sft_loss == "row"
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.state.global_step < trainer.state.max_steps and trainer.control.should_training_stop:
        logger.warning("%s: training stopped at step %d of %d", run_dir, trainer.state.global_step, trainer.state.max_steps)
    return average_final(trainer, recipe, run_dir) or save_final(trainer, recipe, run_dir)


def save_final(trainer: Any, recipe: Recipe, run_dir: str | Path) -> Path:
    """Save the trained model + processor + recipe to ``run_dir/final`` (LoRA: adapter to ``adapter/``, merged weights to ``final/``)."""
    run_dir = Path(run_dir)
    final = run_dir / FINAL_DIR
    if not trainer.is_world_process_zero():
        return final
    if final.exists():
        shutil.rmtree(final)
    model = trainer.model
    if recipe.lora:
        model.save_pretrained(run_dir / ADAPTER_DIR)
        model = model.merge_and_unload()
    model.save_pretrained(final)
    trainer.processing_class.save_pretrained(final)
    recipe.save(final / RECIPE_FILE)
    logger.info("SFT model saved to %s", final)
    return final


def add_sft_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The ``stvg-lab train sft`` options (:func:`stvg_lab.train.recipe.add_recipe_arguments`)."""
    return add_recipe_arguments(parser, "sft")


def sft_command(args: argparse.Namespace) -> int:
    """``stvg-lab train sft --recipe tiny_cpu --out runs/sft [--max-steps N] [--set key=value ...] [--resume]``."""
    final = run_sft(recipe_from_args(args), resume=args.resume)
    print(f"SFT model: {final}")
    return 0
