"""The uniform average of the weights of several checkpoints of one run (checkpoint averaging, as in SWA).

    stvg-lab average --out runs/sft/avg_10k_12k runs/sft/checkpoint-{10000,10500,11000,11500,12000}

At a learning rate held constant, SFT does not settle: the stand-in's test m_vIoU moves by 2-4 points
from one 500-step checkpoint to the next (bench/LEARNING.md round 20), and the last checkpoint is one
draw of that walk. The mean of the last few checkpoints' weights sits nearer the middle of it: on 400
held-out clips the mean of checkpoints 10,000-12,000 of the grounding stage scored +3.4 m_vIoU over
checkpoint 12,000 (two seeds), with no training step. The checkpoints must share one architecture
(one run, or runs from one start); floating tensors are averaged in float64 and cast back, others
(integer buffers) must be equal.

The result is a full checkpoint: the weights plus the configuration, processor and tokenizer files of
the last checkpoint, the ``recipe.yaml`` that trained it (its own, or its run folder's for a
trainer's ``checkpoint-<step>``, so the answer format is known) and ``averaged_from.json`` (each
input's path and fingerprint). Trainer state (optimizer, scheduler, rng) is not carried: the average
is a new starting point, not a resumable run. Sharded checkpoints (``model.safetensors.index.json``)
are averaged shard by shard; LoRA adapters are refused (merge them first).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

WEIGHTS, INDEX = "model.safetensors", "model.safetensors.index.json"
AVERAGED_FROM = "averaged_from.json"
# a trainer's checkpoint-<step> files that belong to the run, not to the weights
TRAINER_STATE = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin"}


def weight_files(checkpoint: Path) -> list[str]:
    """The safetensors files that hold ``checkpoint``'s weights (one file, or the shards its index names)."""
    if (checkpoint / INDEX).is_file():
        index = json.loads((checkpoint / INDEX).read_text())
        try:
            return sorted(set(index["weight_map"].values()))
        except (KeyError, AttributeError):
            raise ValueError(f"{checkpoint / INDEX}: no 'weight_map'; not a transformers shard index") from None
    if (checkpoint / WEIGHTS).is_file():
        return [WEIGHTS]
    if (checkpoint / "adapter_model.safetensors").is_file():
        raise ValueError(f"{checkpoint} holds a LoRA adapter; merge it into the base weights before averaging")
    raise FileNotFoundError(f"{checkpoint}: no {WEIGHTS} or {INDEX}; is it a full-model checkpoint?")


def _average_file(paths: Sequence[Path]) -> dict:
    """The averaged tensors of one safetensors file across ``paths`` (same keys, shapes, dtypes)."""
    import torch
    from safetensors.torch import load_file

    first = load_file(paths[0])
    sums = {k: v.double() if v.is_floating_point() else v for k, v in first.items()}
    for path in paths[1:]:
        tensors = load_file(path)
        if tensors.keys() != first.keys():
            diff = sorted(tensors.keys() ^ first.keys())[:3]
            raise ValueError(f"{path}: not the tensors of {paths[0]} (differs in {diff}); average checkpoints of one architecture")
        for k, v in tensors.items():
            if v.shape != first[k].shape or v.dtype != first[k].dtype:
                raise ValueError(f"{path}: tensor {k!r} is {v.dtype} {tuple(v.shape)}, "
                                 f"{paths[0]} has {first[k].dtype} {tuple(first[k].shape)}")
            if v.is_floating_point():
                sums[k] += v.double()
            elif not torch.equal(v, first[k]):
                raise ValueError(f"{path}: integer tensor {k!r} differs from {paths[0]}'s; it cannot be averaged")
    n = len(paths)
    return {k: (s / n).to(first[k].dtype) if first[k].is_floating_point() else s for k, s in sums.items()}


def average_checkpoints(checkpoints: Sequence[str | Path], out: str | Path, replace: bool = False) -> Path:
    """Write the uniform average of ``checkpoints``' weights into a new checkpoint folder ``out``.

    ``out`` must not exist unless ``replace``; it appears whole or not at all (:func:`stvg_lab.folders.written_whole`).
    Raises FileNotFoundError / ValueError naming the checkpoint, file or tensor that does not fit.
    """
    from safetensors.torch import save_file

    from stvg_lab.checkpoints import checkpoint_fingerprint
    from stvg_lab.folders import written_whole
    from stvg_lab.train.recipe import run_recipe_path

    paths = [Path(c) for c in checkpoints]
    out = Path(out)
    if len(paths) < 2:
        raise ValueError(f"averaging needs at least two checkpoints, got {len(paths)}")
    if len(set(p.resolve() for p in paths)) != len(paths):
        raise ValueError("a checkpoint is listed twice; a weighted average is not what this computes")
    if out.exists() and not replace:
        raise FileExistsError(f"{out} exists; choose a new folder for the averaged checkpoint")
    files = weight_files(paths[0])
    for p in paths[1:]:
        if weight_files(p) != files:
            raise ValueError(f"{p}: its weights are split into {weight_files(p)}, {paths[0]}'s into {files}")
    last = paths[-1]
    recipe = run_recipe_path(last)
    with written_whole(out, replace=replace) as tmp:
        for f in sorted(last.iterdir()):  # configuration, processor, tokenizer, shard index
            if f.is_file() and f.name not in TRAINER_STATE and f.suffix != ".safetensors":
                shutil.copy2(f, tmp / f.name)
        if recipe is not None:
            shutil.copy2(recipe, tmp / "recipe.yaml")
        for name in files:  # one shard at a time: memory ~ one shard in float64
            save_file(_average_file([p / name for p in paths]), tmp / name, metadata={"format": "pt"})
        record = {"checkpoints": [{"path": str(p), "fingerprint": checkpoint_fingerprint(p)} for p in paths],
                  "weights": "uniform mean, float64 accumulation", "recipe": str(recipe) if recipe else None}
        (tmp / AVERAGED_FROM).write_text(json.dumps(record, indent=1) + "\n")
    logger.info("averaged %d checkpoints into %s", len(paths), out)
    return out


def average_run(run_dir: str | Path, steps: Sequence[int]) -> Path:
    """Replace ``run_dir/final`` with the mean of the run's ``checkpoint-<s>`` for ``s`` in ``steps``.

    What a recipe's ``average_from_step`` asks for (:meth:`~stvg_lab.train.recipe.Recipe.averaged_steps`
    gives ``steps``); SFT and GRPO call it on the main process once the last step is saved. A missing
    checkpoint (removed, or never saved) raises FileNotFoundError naming it; ``final`` is then left as it was.
    """
    from stvg_lab.train.runs import FINAL_DIR

    run_dir = Path(run_dir)
    checkpoints = [run_dir / f"checkpoint-{s}" for s in steps]
    missing = [c.name for c in checkpoints if not c.is_dir()]
    if missing:
        raise FileNotFoundError(f"{run_dir}: average_from_step averages {', '.join(missing)}, which the run does not hold")
    return average_checkpoints(checkpoints, run_dir / FINAL_DIR, replace=True)
