"""Run folders shared by SFT and GRPO: what counts as started, where to resume, and a resume that works.

A run folder holds ``recipe.yaml``, ``environment.jsonl``, ``checkpoint-<step>/`` folders,
``log.jsonl``/``log.csv`` and, when training finished, ``final/`` (loadable by
``stvg_lab.model.load_model``).
"""

from __future__ import annotations

import datetime
import json
import logging
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stvg_lab.train.recipe import Recipe

logger = logging.getLogger(__name__)

FINAL_DIR = "final"
ENVIRONMENT_FILE = "environment.jsonl"
# the packages whose versions change what a run computes (trl and transformers are pinned; the rest drift)
PACKAGES = ("stvg-lab", "torch", "transformers", "trl", "peft", "accelerate", "vllm", "decord")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    """``git <args>`` in this package's folder, or None outside a git checkout (an installed wheel)."""
    try:
        done = subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def run_environment() -> dict[str, Any]:
    """What a run ran on, beyond its recipe: versions, CPU kernels, GPU, threads, the code's commit.

    Why: on one machine and one dataset a run repeats to the bit (bench/LEARNING.md round 10), but
    versions and CPU kernels change floats' last bits, which a long run amplifies, so a number is
    only comparable with the environment it was made in. ``cpu_capability`` is the SIMD level torch's
    CPU kernels dispatch to (e.g. AVX2 vs AVX512 changes float summation order).
    """
    import torch

    cuda = torch.cuda.is_available()
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if cuda else None,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "argv": sys.argv,
    }


def record_environment(run_dir: str | Path, resumed_from: str | None) -> Path:
    """Append this start's :func:`run_environment` to ``run_dir/environment.jsonl`` (one line per start or resume)."""
    path = Path(run_dir) / ENVIRONMENT_FILE
    line = {"started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "resumed_from": resumed_from, **run_environment()}
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(line) + "\n")
    return path


def environment_label(env: dict[str, Any]) -> str:
    """One :func:`run_environment` record in a few words: CPU kernels, GPUs, the pinned stack, threads."""
    p = env["packages"]
    gpus = f", {'/'.join(env['gpus'])}" if env["gpus"] else ""
    return (f"{env['cpu_capability']}{gpus}, torch {p['torch']}, transformers {p['transformers']}, trl {p['trl']}, "
            f"{env['torch_threads']} thread(s)")


def read_environment(run_dir: str | Path) -> list[dict[str, Any]]:
    """The starts recorded in ``run_dir/environment.jsonl``, oldest first (empty for a run made before it existed)."""
    path = Path(run_dir) / ENVIRONMENT_FILE
    if not path.is_file():
        return []
    rows = []
    for k, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rows.append(json.loads(text))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {k}: not JSON ({e.msg})") from e
    return rows


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


def average_final(trainer: Any, recipe: Recipe, run_dir: str | Path) -> Path | None:
    """Write ``run_dir/final`` as the mean of the checkpoints ``recipe.average_from_step`` names, once the run is complete.

    SFT and GRPO call it after training, before saving the last weights: it returns ``final`` when it
    averaged, and None when ``final`` is to hold the last step's weights, which the caller then saves
    (no ``average_from_step``, or a run stopped before ``max_steps``, with a warning: its last step
    has no checkpoint to average, and resuming it to ``max_steps`` averages). So a model is written
    once, not saved and then replaced. Every process calls it; the main one writes.
    """
    from stvg_lab.train.averaging import average_run

    steps = recipe.averaged_steps()
    if not steps:
        return None
    if trainer.state.global_step < recipe.max_steps:
        logger.warning("%s stopped at step %d of %d: final/ holds that step's weights, not the mean of checkpoints %d-%d; "
                       "resume the run to finish and average", run_dir, trainer.state.global_step, recipe.max_steps, steps[0], steps[-1])
        return None
    if trainer.is_world_process_zero():
        average_run(run_dir, steps)
        logger.info("%s: final/ is the mean of %d checkpoints, steps %d-%d", run_dir, len(steps), steps[0], steps[-1])
    trainer.accelerator.wait_for_everyone()
    return Path(run_dir) / FINAL_DIR


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
