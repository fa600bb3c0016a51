"""Training recipes: every knob of an SFT or GRPO run in one dataclass, read from YAML and saved with the run.

Seven recipes ship in ``stvg_lab/recipes/``:

* ``paper.yaml``: the paper's §4 values (AdamW, lr 1e-6, weight decay 1e-2, global batch 128
  through gradient accumulation, 8 rollouts, λk = 0.5, 2 fps, longer side ≤ 336) for
  Qwen2.5-VL-7B on a GPU, plus our documented choices where the paper gives no value (β and ε
  of Eq. 12, the sampling temperature, the completion length, the SFT think target). Each value
  carries a comment saying which.
* ``tiny_cpu.yaml``: what the randomly initialised stand-in (``stvg_lab.model.build_tiny_model``)
  needs on two CPU cores: a higher learning rate, a small batch, a few hundred steps.
* ``tiny_cpu_polish.yaml``: more rounds of the same SFT at a third of the learning rate, which the shipped
  SFT checkpoint ran after the curriculum (bench/make_shipped_sft.py, bench/LEARNING.md round 15).
* ``tiny_cpu_ground.yaml``: the grounding rows alone (no cell rows) at ``tiny_cpu``'s rate held constant,
  ``final`` the mean of its last nine checkpoints (``average_from_step``), the shipped checkpoint's stage
  after the polish rounds (bench/LEARNING.md rounds 18-20).
* ``tiny_cpu_clips.yaml``: the same stage on a 12,000-clip train split of the benchmark, 10,000 steps,
  ``final`` the mean of checkpoints 6,000-10,000: the shipped checkpoint's last stage (rounds 21-23).
* ``tiny_cpu_grpo.yaml``: its GRPO stage with the paper's five rewards (what ``make demo`` runs).
* ``tiny_cpu_grpo_metric.yaml``: the same stage with the test metric as the spatial reward, not
  the paper's (bench/LEARNING.md round 12).

:func:`load_recipe` reads one by name or path and applies overrides; an unknown key, in the file
or among the overrides, raises ``ValueError`` naming the key and where it came from. Values are
checked against the field types (``1e-6`` is a string to PyYAML and is read as a float here).
:meth:`Recipe.save` writes the complete recipe (every field, defaults included) as YAML: each
run writes it into its run directory before training, so a run always records what it used.

Batch sizes. The global batch is ``per_device_batch_size × gradient_accumulation_steps ×
world_size``. When ``global_batch_size`` is set (``paper.yaml``: 128) it is the fixed quantity:
:meth:`Recipe.accumulation_steps` derives the accumulation for the actual number of processes
("achieved via gradient accumulation when necessary", §4), and ``gradient_accumulation_steps``
records the single-process value. The unit is TRL's: sequences per optimizer step, i.e. samples
for SFT and completions for GRPO (128 completions = 16 prompts × 8 rollouts). The paper does not
say whether its 128 counts prompts or responses; this reading keeps one optimizer step at 128
sequences in both stages.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from stvg_lab.reward_variants import REWARD_TERMS, VARIANTS, scaled_weights

logger = logging.getLogger(__name__)

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"
DATASETS: tuple[str, ...] = ("synthetic", "hcstvg-v1", "hcstvg-v2", "vidstg")
THINK_TARGETS: tuple[str, ...] = ("grid", "same")
"""SFT ``<think_bbox>`` targets (``stvg_lab.train.dataset.sft_target``): ``grid`` = the ground-truth
box snapped outward to the 28-px grid of merged vision tokens; ``same`` = the ground-truth box.
A format without ``<think_bbox>`` (``answer_format: no_think``, Table 5) ignores the field."""
SFT_LOSSES: tuple[str, ...] = ("token", "row")
"""SFT loss reductions (``stvg_lab.train.sft``): ``token`` = TRL's mean over the batch's answer tokens;
``row`` = each row's token mean, then the mean over rows (:func:`stvg_lab.train.sft.row_mean_loss`)."""
PROMPT_ORDERS: tuple[str, ...] = ("video_first", "text_first")
"""Where the prompt sits in the user turn (``stvg_lab.processor.stvg_chat_template``): ``video_first`` is
Qwen's order and the paper's; ``text_first`` puts the query before the video, so the answer is the
same number of mRoPE positions after every video token whatever the query's length (bench/LEARNING.md
round 5: the from-scratch stand-in reads positions only at a fixed offset)."""
REWARD_VARIANTS: tuple[str, ...] = VARIANTS  # stvg_lab.reward_variants.reward_setup's names, one list for both
REWARD_AGGREGATIONS: tuple[str, ...] = ("sum_then_normalize", "normalize_then_sum")
"""How GRPO turns the five rewards into one advantage (TRL's ``multi_objective_aggregation``):
``sum_then_normalize`` is the paper's Eq. 10-11 (weighted sum, then normalised within the group);
``normalize_then_sum`` normalises each reward within its group first, then sums them with the same
weights and normalises over the batch (GDPO), so a wide-ranged term (the spatial one, [-4, 2]) does not
drown the narrow ones (temporal, [0, 1]) in the advantage (bench/LEARNING.md round 7)."""
VLLM_MODES: tuple[str, ...] = ("colocate", "server")
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")


@dataclass
class Recipe:
    """One training run's configuration (SFT and GRPO read the same object).

    Defaults are the paper's values where §4 gives one; see ``recipes/paper.yaml`` for the
    source of each. Field groups: run and data; model input; SFT target; optimisation; GRPO
    (Eq. 11-12); LoRA.
    """

    # run and data
    name: str = "paper"
    model: str = "tiny"  # checkpoint dir or hub id in the local cache; "tiny" = build the CPU stand-in
    tiny_model: dict = field(default_factory=dict)  # build_tiny_model kwargs when model == "tiny" (vocab, seed, size knobs)
    init_from: str = "base"  # GRPO: "base" (= model) or the path of an SFT checkpoint
    data: str = "data/synthetic"  # dataset folder (layouts: data/README.md, stvg_lab.data.layout)
    dataset: str = "synthetic"
    train_split: str = "train"
    eval_split: str = "val"
    max_train_samples: int | None = None  # first N training samples (None = all)
    output_dir: str = "runs/run"
    seed: int = 0

    # model input (§4)
    fps: float = 2.0
    max_side: int = 336
    answer_format: str = "paper"
    system_prompt: str | None = None
    clip_cache_items: int | None = None  # decoded clips kept in memory (None = all)

    # SFT target
    think_target: str = "grid"
    max_length: int | None = None  # SFT sequence cap in tokens; None = never truncate (a cut would lose the answer)

    # optimisation (§4: AdamW)
    learning_rate: float = 1e-6
    weight_decay: float = 0.01
    optim: str = "adamw_torch"
    per_device_batch_size: int = 8
    gradient_accumulation_steps: int = 16
    global_batch_size: int | None = 128
    max_steps: int = -1  # > 0 overrides num_train_epochs
    num_train_epochs: float = 1.0
    warmup_ratio: float = 0.0
    lr_scheduler_type: str = "constant"
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto: bf16 on CUDA, fp32 on CPU
    gradient_checkpointing: bool = True  # GPU only; always off on CPU
    # SFT: also one "box in frame k" row per sample (stvg_lab.train.dataset.frame_box_row); off in the paper
    aux_frame_boxes: bool = False
    # SFT: also one "cell of its centre in frame k" row per sample (frame_cell_row, bench/position_probe.py's question)
    aux_frame_cells: bool = False
    # SFT: also one "colour and shape of the object in cell rc of frame k" row per sample, sentence left out
    # (frame_attribute_row; synthetic samples only)
    aux_frame_attributes: bool = False
    # SFT loss: "token" = TRL's mean over all answer tokens of a batch (a 3-token auxiliary answer beside a
    # 230-token one gets ~2 % of it); "row" = each row's token mean, then the mean over rows (sft.row_mean_loss)
    sft_loss: str = "token"
    # None keeps the checkpoint's chat template; video_first / text_first set ours in that order (PROMPT_ORDERS)
    prompt_order: str | None = None
    train_vision_tower: bool = True  # False freezes the ViT (patch embedding and blocks); the merger and LLM still train
    save_steps: int = 100
    save_total_limit: int | None = None
    # None: final/ holds the last step's weights. N: final/ is the uniform mean of the checkpoints saved at
    # steps >= N, the last step's included (Recipe.averaged_steps; stvg_lab.train.averaging.average_run); the
    # last step's own weights stay in checkpoint-<max_steps>. Not the paper: at a constant lr the stand-in's
    # checkpoints wander +-2-4 test m_vIoU and their mean beat the last one by +3.4 to +6.6 (LEARNING.md round 20).
    average_from_step: int | None = None
    logging_steps: int = 1
    dataloader_num_workers: int = 0
    report_to: list = field(default_factory=list)
    torch_threads: int | None = None  # torch.set_num_threads before training; None = torch's default

    # GRPO (§3.3, Eq. 11-12)
    num_generations: int = 8
    beta: float = 0.04
    epsilon: float = 0.2
    temperature: float = 1.0
    # not the paper: one completion of each group is the greedy answer (VideoGRPOTrainer, grpo_video.py)
    greedy_in_group: bool = False
    max_completion_length: int = 2048
    num_iterations: int = 1
    loss_type: str = "grpo"
    scale_rewards: str = "group"
    reward_aggregation: str = "sum_then_normalize"  # REWARD_AGGREGATIONS; the paper's Eq. 10-11 order
    lambda_k: float = 0.5
    reward_variant: str = "full"
    # not the paper: factors on named terms' weights of Eq. 10, e.g. {format: 3} (reward_variants.scaled_weights); {} = Eq. 10
    reward_scale: dict = field(default_factory=dict)
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    log_completions: bool = False

    # LoRA (peft)
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "recipe") -> None:
        """Raise ValueError naming the field when a value is out of its allowed set or range."""
        from stvg_lab.answer import FORMATS

        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"{where}: field {name!r} = {getattr(self, name)!r} {why}")

        choices = {
            "dataset": DATASETS,
            "answer_format": tuple(FORMATS),
            "think_target": THINK_TARGETS,
            "sft_loss": SFT_LOSSES,
            "reward_variant": REWARD_VARIANTS,
            "reward_aggregation": REWARD_AGGREGATIONS,
            "vllm_mode": VLLM_MODES,
            "precision": PRECISIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise bad(name, f"is not one of {list(allowed)}")
        if self.prompt_order is not None and self.prompt_order not in PROMPT_ORDERS:
            raise bad("prompt_order", f"is not one of {list(PROMPT_ORDERS)} or null (the checkpoint's own template)")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise bad("torch_threads", "must be at least 1 or null")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "num_generations", "save_steps",
                     "logging_steps", "max_completion_length", "num_iterations", "lora_r"):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        for name in ("learning_rate", "fps", "max_side", "temperature"):
            if not getattr(self, name) > 0:
                raise bad(name, "must be positive")
        for name in ("weight_decay", "beta", "epsilon", "lambda_k", "max_grad_norm", "lora_dropout"):
            if getattr(self, name) < 0:
                raise bad(name, "must be >= 0")
        try:
            scaled_weights([1.0] * len(REWARD_TERMS), self.reward_scale)
        except ValueError as e:
            raise bad("reward_scale", f"is not valid: {e}") from None
        if not 0 <= self.warmup_ratio < 1:
            raise bad("warmup_ratio", "must be in [0, 1)")
        if self.max_steps == 0 or self.max_steps < -1:
            raise bad("max_steps", "must be -1 (use num_train_epochs) or positive")
        if self.average_from_step is not None:
            if self.max_steps < 1:
                raise bad("average_from_step", "needs max_steps > 0 (which checkpoints to average must be known before the run)")
            if not 1 <= self.average_from_step < self.max_steps:
                raise bad("average_from_step", f"must be in [1, max_steps={self.max_steps})")
            if self.lora:
                raise bad("average_from_step", "averages full-model checkpoints; LoRA checkpoints hold adapters")
            steps = self.averaged_steps()
            if len(steps) < 2:
                raise bad("average_from_step", f"leaves one checkpoint ({steps}) at save_steps={self.save_steps}; lower it or save_steps")
            if self.save_total_limit is not None and self.save_total_limit < len(steps):
                raise bad("save_total_limit", f"would delete checkpoints that average_from_step={self.average_from_step} "
                          f"averages ({len(steps)}: steps {steps[0]}..{steps[-1]}); set it to null or >= {len(steps)}")
        if self.global_batch_size is not None and self.global_batch_size % self.per_device_batch_size:
            raise bad("global_batch_size", f"is not a multiple of per_device_batch_size={self.per_device_batch_size}")

    def averaged_steps(self) -> list[int]:
        """The steps whose checkpoints ``final/`` averages: every ``save_steps`` multiple from ``average_from_step``
        on, and ``max_steps`` (the trainer saves the last step too); empty when ``average_from_step`` is None."""
        if self.average_from_step is None:
            return []
        first = -(-self.average_from_step // self.save_steps) * self.save_steps
        steps = list(range(first, self.max_steps + 1, self.save_steps))
        return steps if steps and steps[-1] == self.max_steps else [*steps, self.max_steps]

    def accumulation_steps(self, world_size: int = 1) -> int:
        """Gradient accumulation for ``world_size`` processes.

        With ``global_batch_size`` set: ``global / (per_device × world_size)``, which must be a
        whole number; otherwise ``gradient_accumulation_steps`` as given.
        """
        if self.global_batch_size is None:
            return self.gradient_accumulation_steps
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise ValueError(
                f"recipe {self.name!r}: global_batch_size={self.global_batch_size} is not a multiple of "
                f"per_device_batch_size × world_size = {self.per_device_batch_size} × {world_size}; "
                "change per_device_batch_size or the number of processes"
            )
        return self.global_batch_size // per_step

    def effective_global_batch(self, world_size: int = 1) -> int:
        """Sequences per optimizer step: ``per_device_batch_size × accumulation × world_size``."""
        return self.per_device_batch_size * self.accumulation_steps(world_size) * world_size

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values (lists copied), in declaration order."""
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> Path:
        """Write the complete recipe as YAML (every field, defaults included) and return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = f"# stvg-lab recipe {self.name!r}: every field as the run used it (stvg_lab.train.recipe.Recipe)\n"
        path.write_text(header + yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")
        return path

    def replace(self, **overrides: Any) -> "Recipe":
        """A copy with ``overrides`` applied (checked like :func:`load_recipe`'s)."""
        values = self.to_dict()
        values.update(_checked(overrides, "overrides"))
        return Recipe(**values)

    def training_kwargs(self, cuda: bool | None = None, world_size: int = 1) -> dict[str, Any]:
        """Keyword arguments shared by TRL's ``SFTConfig`` and ``GRPOConfig``.

        CPU (``cuda=False``, or no CUDA device when None): ``use_cpu``, fp32 (``bf16=False``),
        no activation checkpointing, and the recipe's learning rate passed explicitly (TRL's
        defaults assume a GPU: bf16, checkpointing on). GPU: bf16 unless ``precision: fp32``.
        ``remove_unused_columns=False`` because our datasets attach their frames with
        ``Dataset.with_transform`` (``docs/trl_video_notes.md``).
        """
        if cuda is None:
            import torch

            cuda = torch.cuda.is_available()
        bf16 = cuda and self.precision in ("auto", "bf16")
        if self.precision == "bf16" and not cuda:
            raise ValueError(f"recipe {self.name!r}: precision 'bf16' needs a CUDA device; use 'auto' or 'fp32' on CPU")
        return dict(
            output_dir=str(self.output_dir),
            seed=self.seed,
            learning_rate=float(self.learning_rate),
            weight_decay=float(self.weight_decay),
            optim=self.optim,
            per_device_train_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.accumulation_steps(world_size),
            max_steps=self.max_steps,
            num_train_epochs=float(self.num_train_epochs),
            warmup_steps=float(self.warmup_ratio),  # transformers 5: a value < 1 is a ratio of the total steps
            lr_scheduler_type=self.lr_scheduler_type,
            max_grad_norm=float(self.max_grad_norm),
            logging_steps=self.logging_steps,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            dataloader_num_workers=self.dataloader_num_workers,
            report_to=list(self.report_to) or "none",
            use_cpu=not cuda,
            bf16=bf16,
            activation_checkpointing=bool(cuda and self.gradient_checkpointing),
            remove_unused_columns=False,
        )

    def apply_torch_threads(self) -> None:
        """``torch.set_num_threads(torch_threads)`` when set (both trainers call it before building the model; the
        thread count each run used is in its ``environment.jsonl``).

        On a shared 2-core machine torch's default (one thread per core) oversubscribes the cores:
        the tiny SFT step at batch 4 took ~6 s with 2 threads beside other jobs and 0.56 s with 1.
        """
        if self.torch_threads is not None:
            import torch

            torch.set_num_threads(self.torch_threads)

    def lora_config(self):
        """A ``peft.LoraConfig`` for this recipe, or None when ``lora`` is off."""
        if not self.lora:
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            target_modules=list(self.lora_target_modules),
            task_type="CAUSAL_LM",
        )


def recipe_names() -> list[str]:
    """Names of the recipes shipped in ``stvg_lab/recipes/``."""
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name_or_path: str | Path) -> Path:
    """The YAML file of a recipe name (``paper``, ``tiny_cpu``) or an existing path."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / f"{Path(str(name_or_path)).stem}.yaml"
    if path.suffix in ("", ".yaml", ".yml") and path.parent == Path(".") and shipped.is_file():
        return shipped
    raise FileNotFoundError(f"recipe {str(name_or_path)!r} is neither a file nor one of the shipped recipes {recipe_names()}")


_HINTS: dict[str, Any] | None = None


def _field_types() -> dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(Recipe)
    return _HINTS


def _coerce(name: str, value: Any, where: str) -> Any:
    """``value`` converted to field ``name``'s type, or ValueError naming the field and ``where``."""
    hint = _field_types()[name]
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise ValueError(f"{where}: field {name!r} may not be null")
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
        elif base is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, str):
                return int(value)
            if isinstance(value, float) and value.is_integer():
                return int(value)
        elif base is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str):
                return float(value)  # PyYAML reads "1e-6" (no dot) as a string
        elif base is str:
            if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                return str(value)
        elif base is list:
            if isinstance(value, (list, tuple)):
                return list(value)
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
        elif base is dict:
            if isinstance(value, Mapping):
                return dict(value)
    except ValueError:
        pass
    raise ValueError(f"{where}: field {name!r} expects {getattr(base, '__name__', base)}, got {value!r}")


def _checked(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in fields(Recipe)}
    out = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"{where}: unknown recipe key {key!r}; known keys: {sorted(known)}")
        out[key] = _coerce(key, value, where)
    return out


def _read_values(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The checked fields of one recipe file, on top of those of the recipe it ``extends`` (if any).

    ``extends: <name or path>`` lets a stage recipe (``tiny_cpu_grpo``) state only what differs
    from its base; the run still records every field (:meth:`Recipe.save`).
    """
    if path.resolve() in seen:
        raise ValueError(f"{path}: 'extends' forms a cycle ({' -> '.join(str(p) for p in seen)} -> {path})")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({e})") from e
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path}: a recipe must be a mapping of field: value, got {type(raw).__name__}")
    raw = dict(raw)
    base = raw.pop("extends", None)
    values: dict[str, Any] = {}
    if base is not None:
        try:
            base_path = recipe_path(base)
        except FileNotFoundError as e:
            raise ValueError(f"{path}: extends: {e}") from e
        values = _read_values(base_path, (*seen, path.resolve()))
        values.pop("name", None)
    values.update(_checked(raw, str(path)))
    return values


def load_recipe(name_or_path: str | Path, **overrides: Any) -> Recipe:
    """Read a recipe by shipped name (``"paper"``, ``"tiny_cpu"``) or YAML path, then apply ``overrides``.

    Fields missing from the file take the :class:`Recipe` defaults. An unknown key raises
    ValueError naming the key and the file (or ``overrides``); so does a value of the wrong
    type or outside its allowed set.
    """
    path = recipe_path(name_or_path)
    values = _read_values(path, ())
    values.update(_checked(overrides, f"overrides to {path}"))
    values.setdefault("name", path.stem)
    recipe = Recipe.__new__(Recipe)
    for f in fields(Recipe):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        setattr(recipe, f.name, values.get(f.name, default))
    recipe.validate(where=f"{path}{' with overrides' if overrides else ''}")
    return recipe


def run_recipe_path(checkpoint: str | Path) -> Path | None:
    """The ``recipe.yaml`` that trained ``checkpoint``: the one saved in it, else, for a trainer's
    intermediate ``checkpoint-<step>`` (which holds none), its run folder's one level up
    (``run_sft``/``run_grpo`` write it there); None when there is neither."""
    path = Path(checkpoint)
    if (path / "recipe.yaml").is_file():
        return path / "recipe.yaml"
    if re.fullmatch(r"checkpoint-\d+", path.name) and (path.parent / "recipe.yaml").is_file():
        return path.parent / "recipe.yaml"
    return None


def trained_answer_format(checkpoint: str | Path, default: str) -> str:
    """The answer format ``checkpoint`` was trained to write (:func:`run_recipe_path`'s recipe), else ``default``.

    Asked in another format than it was trained on, a checkpoint answers nothing parseable and
    scores 0 everywhere.
    """
    saved = run_recipe_path(checkpoint)
    return load_recipe(saved).answer_format if saved is not None else default


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["learning_rate=1e-5", "lora=true", "lora_target_modules=[q_proj,v_proj]"]`` -> a dict (values read as YAML).

    For the CLI's ``--set key=value``; :func:`load_recipe` checks keys and types.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        try:
            out[key.strip()] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            out[key.strip()] = value
    return out


def add_recipe_arguments(parser: argparse.ArgumentParser, stage: str) -> argparse.ArgumentParser:
    """The options of ``stvg-lab train sft`` / ``train grpo`` (``stage``), shared by both.

    Lives here, not beside the trainers, so that building the CLI's parser imports no trainer.
    """
    default = "tiny_cpu_grpo" if stage == "grpo" else "tiny_cpu"
    parser.add_argument("--recipe", default=default,
                        help=f"a shipped recipe name ({', '.join(recipe_names())}) or a YAML path (default: {default})")
    parser.add_argument("--out", default=None, help="run directory (default: the recipe's output_dir)")
    parser.add_argument("--data", default=None, help="dataset folder (default: the recipe's data)")
    if stage == "grpo":
        parser.add_argument("--init-from", default=None, help="SFT checkpoint dir (e.g. runs/sft/final) or 'base'")
    parser.add_argument("--max-steps", type=int, default=None, help="optimizer steps (overrides the recipe)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any recipe field, e.g. --set learning_rate=1e-4 --set lora=true (repeatable)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    return parser


def recipe_from_args(args: argparse.Namespace) -> Recipe:
    """The recipe named by ``args.recipe`` with ``--set`` overrides, then the dedicated options applied."""
    overrides = parse_overrides(args.set or [])
    for key, option in (("output_dir", "out"), ("data", "data"), ("init_from", "init_from"), ("max_steps", "max_steps")):
        value = getattr(args, option, None)
        if value is not None:
            overrides[key] = value
    return load_recipe(args.recipe, **overrides)
