"""Run folders shared by SFT and GRPO: what counts as started, where to resume, and a resume that works.

A run folder holds ``recipe.yaml``, ``checkpoint-<step>/`` folders, ``log.jsonl``/``log.csv`` and,
when training finished, ``final/`` (loadable by ``stvg_lab.model.load_model``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

FINAL_DIR = "final"


def existing_outputs(run_dir: str | Path) -> list[Path]:
    """The checkpoints and final model already in ``run_dir`` (empty when it does not exist)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    final = run_dir / FINAL_DIR
    return sorted(run_dir.glob("checkpoint-*")) + ([final] if final.exists() else [])


def resume_point(run_dir: str | Path, resume: bool) -> str | None:
    """The checkpoint to resume ``run_dir`` from, or None to start at the first step.

    Without ``resume`` a folder that already holds checkpoints or a final model is refused
    (``FileExistsError``): a second run must not silently mix with the first. With ``resume`` the
    last ``checkpoint-<step>`` is returned; when there is none (the run died before its first
    checkpoint) the run starts from the first step, with a warning.
    """
    from transformers.trainer_utils import get_last_checkpoint

    run_dir = Path(run_dir)
    existing = existing_outputs(run_dir)
    if existing and not resume:
        raise FileExistsError(
            f"{run_dir} already holds {', '.join(p.name for p in existing[:3])}; resume with resume=True "
            "(CLI: --resume) or choose another output_dir"
        )
    checkpoint = get_last_checkpoint(str(run_dir)) if resume and run_dir.is_dir() else None
    if resume and checkpoint is None:
        logger.warning("%s: no checkpoint-<step> folder to resume from; starting from the first step", run_dir)
    return checkpoint


class FullCheckpointResume:
    """Trainer mixin: on resume, read a full-model checkpoint through ``from_pretrained``.

    transformers 5.23's ``Trainer._load_from_checkpoint`` reads ``model.safetensors`` with a plain
    ``load_state_dict(strict=False)``. ``save_pretrained`` writes Qwen2.5-VL's keys in the released
    layout (``visual.*``, ``model.layers.*``) while the module's are ``model.visual.*`` and
    ``model.language_model.*``: no key matches, every weight keeps its *initial* value, the run
    continues with the checkpoint's optimizer state, and only a warning is logged
    (huggingface/transformers#43701; found by the resume tests of SFT and GRPO). This mixin loads
    the checkpoint with ``from_pretrained``, which applies the key mapping, and copies it in with
    ``strict=True``. LoRA adapters, FSDP and DeepSpeed checkpoints keep the stock loaders, which
    read their own layouts. Put it first: ``class T(FullCheckpointResume, SFTTrainer)``.
    """

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from accelerate.utils import is_peft_model

        model = self.model if model is None else model
        path = Path(resume_from_checkpoint)
        full = (path / "model.safetensors").is_file() or (path / "model.safetensors.index.json").is_file()
        if not full or is_peft_model(model) or self.is_fsdp_enabled or self.is_deepspeed_enabled:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        dtype = next(model.parameters()).dtype
        loaded = type(model).from_pretrained(path, dtype=dtype)
        model.load_state_dict(loaded.state_dict(), strict=True)
        logger.info("resumed the model weights from %s", path)
