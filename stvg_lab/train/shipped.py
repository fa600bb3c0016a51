"""The SFT checkpoint of the CPU stand-in that ships inside the package.

    python bench/make_shipped_sft.py          # remakes it (curriculum + polish + grounding and clips stages, ~4.5 h on one core) and replaces the shipped copy

Why ship one: a from-scratch stand-in reads the frames only after a curriculum (bench/curriculum.py,
bench/LEARNING.md round 5: cell questions, text first, then 3 x 2,500 steps of the ``tiny_cpu`` SFT) and
its pred boxes only after more SFT at a lower rate (``tiny_cpu_polish`` rounds, round 15) and a long
stage of the grounding rows alone at a constant rate, its last checkpoints averaged (``tiny_cpu_ground``,
rounds 19-20), then the same on four times the train clips (``tiny_cpu_clips``, round 21): longer than
``make demo`` should spend, so the demo starts GRPO and the ablations from this checkpoint.
``stvg-lab demo --from-scratch`` trains the ``tiny_cpu`` SFT alone from a fresh stand-in: the same
recipe without the reader stages or the polish, a model that learns the format and the sentence's
prior. A checkpoint is only valid for the synthetic benchmark it was trained on:
:func:`check_compatible` compares the generator version, config and seed recorded beside it
(``provenance.json``) with the dataset's manifest and refuses a mismatch, naming the fields.
Split sizes may differ: every clip is drawn from its own seeded stream, so a 300-clip train split
is the first 300 clips of the 3,000-clip one and the test split is the same in both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from stvg_lab.folders import written_whole

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "assets" / "checkpoints"
PROVENANCE = "provenance.json"
# what a checkpoint directory needs to load (stvg_lab.model.load_model); optimizer state is not shipped
_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
          "chat_template.jinja", "processor_config.json", "video_preprocessor_config.json", "preprocessor_config.json",
          "stvg_tiny.json", "recipe.yaml")
_DATA_KEYS = ("generator_version", "seed", "config")
# Recipe fields that may differ between the shipped SFT run and a retraining without changing the
# SFT model: bookkeeping, and the GRPO-only fields (tiny_cpu_grpo sets its own).
NOT_SFT_FIELDS = frozenset({
    "name", "output_dir", "data", "save_steps", "save_total_limit", "logging_steps", "eval_split", "init_from",
    "num_generations", "beta", "epsilon", "temperature", "max_completion_length", "num_iterations", "loss_type",
    "scale_rewards", "reward_aggregation", "lambda_k", "reward_variant", "reward_scale", "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization",
    "log_completions",
})


def sft_recipe_differences(used: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """Fields (outside :data:`NOT_SFT_FIELDS`) where a run's recipe ``used`` differs from ``recipe``.

    A field ``used`` lacks was added to :class:`~stvg_lab.train.recipe.Recipe` after that run was
    recorded, so the run had its default.
    """
    from stvg_lab.train.recipe import Recipe

    defaults = Recipe().to_dict()
    return sorted(k for k in recipe if k not in NOT_SFT_FIELDS and used.get(k, defaults.get(k)) != recipe[k])


def provenance_differences(provenance: dict[str, Any], recipe: dict[str, Any]) -> list[str]:
    """:func:`sft_recipe_differences` of a shipped checkpoint's recorded recipe and ``recipe``.

    A checkpoint made by the curriculum (``provenance["curriculum"]``, ``bench/curriculum.py``) ran
    the recipe's SFT from the curriculum's reader, so its ``model`` is that stage's folder, not the
    fresh stand-in; every other SFT field must still agree.
    """
    skip = {"model"} if provenance.get("curriculum") else set()
    return [k for k in sft_recipe_differences(provenance["recipe"], recipe) if k not in skip]


def stage_differences(provenance: dict[str, Any]) -> dict[str, list[str]]:
    """Each SFT stage behind a shipped checkpoint against the shipped recipe of that stage, as that recipe is now.

    ``{recipe name: differing fields}``: the last stage (``provenance["recipe"]``: ``tiny_cpu``,
    ``tiny_cpu_polish`` after polish rounds, ``tiny_cpu_ground`` after the grounding stage, ``tiny_cpu_clips``
    after the clips stage), the grounding stage before a clips stage (``provenance["ground_recipe"]``), the last
    polish round before a grounding stage (``provenance["polish_recipe"]``, ``tiny_cpu_polish``) and,
    after polish rounds, the curriculum's last SFT round (``provenance["curriculum"]["recipe"]``,
    ``tiny_cpu``). The stage, not the name a run recorded, picks the recipe: a stage run by hand as
    ``--recipe tiny_cpu_polish --set ...`` is checked against what the stage ships. A change to any of
    these YAMLs that changes SFT must come with a retrained checkpoint.
    """
    from stvg_lab.train.recipe import load_recipe

    last = ("tiny_cpu_clips" if provenance.get("clips") else "tiny_cpu_ground" if provenance.get("ground")
            else "tiny_cpu_polish" if provenance.get("polish") else "tiny_cpu")
    stages = {last: provenance}
    if provenance.get("clips"):
        stages["tiny_cpu_ground"] = {"recipe": provenance["ground_recipe"], "curriculum": provenance["curriculum"]}
    if provenance.get("ground"):
        stages["tiny_cpu_polish"] = {"recipe": provenance["polish_recipe"], "curriculum": provenance["curriculum"]}
    if provenance.get("polish"):
        stages["tiny_cpu"] = {"recipe": provenance["curriculum"]["recipe"], "curriculum": provenance["curriculum"]}
    return {name: provenance_differences(s, load_recipe(name).to_dict()) for name, s in stages.items()}


def shipped_checkpoint(name: str = "tiny_cpu_sft") -> Path:
    """The folder of a shipped checkpoint; FileNotFoundError says how to make it when it is missing."""
    path = SHIPPED_DIR / name
    if not (path / PROVENANCE).is_file():
        raise FileNotFoundError(f"no shipped checkpoint {name!r} in {SHIPPED_DIR}; make it with `python bench/make_shipped_sft.py`")
    return path


def read_provenance(checkpoint: str | Path) -> dict[str, Any]:
    return json.loads((Path(checkpoint) / PROVENANCE).read_text())


def benchmark_differences(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The fields that make two synthetic datasets different benchmarks, as one phrase; ``""`` when none differ.

    ``a`` and ``b``: manifests (``dataset.json``) or a provenance's ``data``. Generator version, seed and
    config count (split sizes do not); config fields added to SynthConfig since one was written take their
    defaults, and a differing config names its fields, e.g. ``"config (config fields: preset)"``.
    """
    from stvg_lab.data.synth_config import full_config

    a, b = dict(a), dict(b)
    for d in (a, b):
        if isinstance(d.get("config"), dict):
            d["config"] = full_config(d["config"])
    diff = [k for k in _DATA_KEYS if a.get(k) != b.get(k)]
    fields = ", ".join(diff)
    if "config" in diff:
        changed = sorted(k for k in set(a["config"]) | set(b["config"]) if a["config"].get(k) != b["config"].get(k))
        fields += f" (config fields: {', '.join(changed)})"
    return fields


def check_compatible(checkpoint: str | Path, data_dir: str | Path) -> None:
    """Raise ValueError unless ``data_dir``'s synthetic benchmark is the one ``checkpoint`` was trained on."""
    from stvg_lab.data.synth import read_manifest

    fields = benchmark_differences(read_provenance(checkpoint)["data"], read_manifest(data_dir))
    if fields:
        raise ValueError(
            f"{checkpoint} was trained on a different synthetic benchmark than {data_dir}: {fields} differ; "
            "generate the default dataset (`stvg-lab data synth`) or train SFT yourself (`stvg-lab demo --from-scratch`)"
        )


def _git_commit() -> str | None:
    """HEAD's commit, with ``-dirty`` when tracked files differ from it (the export ran on uncommitted code)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=here)
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--"], cwd=here).returncode != 0
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return None


def export_checkpoint(final_dir: str | Path, data_dir: str | Path, dest: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Copy an SFT run's ``final/`` (weights, tokenizer, processor; no optimizer) to ``dest`` with ``provenance.json``.

    Provenance: the run's recipe, the dataset's generator version/config/seed/counts/codec/encoder settings, the git
    commit, and ``extra`` (e.g. the command, wall time, final loss). Atomic: written beside
    ``dest`` and renamed into place.
    """
    from stvg_lab.data.synth import read_manifest
    from stvg_lab.train.recipe import load_recipe

    final_dir, dest = Path(final_dir), Path(dest)
    run_recipe = final_dir.parent / "recipe.yaml"
    manifest = read_manifest(data_dir)
    provenance = {
        "recipe": load_recipe(run_recipe).to_dict() if run_recipe.is_file() else None,
        # codec and encoder settings: a record of which pixels it saw (round 10: the encoder changed them), not a compatibility key
        "data": {k: manifest.get(k) for k in (*_DATA_KEYS, "counts", "codec", "encoder_options")},
        "git_commit": _git_commit(),
        **(extra or {}),
    }
    with written_whole(dest, replace=True) as tmp:
        for name in _FILES:
            if (final_dir / name).is_file():
                shutil.copy2(final_dir / name, tmp / name)
        if not (tmp / "model.safetensors").is_file() or not (tmp / "config.json").is_file():
            raise FileNotFoundError(f"{final_dir} holds no model.safetensors/config.json; pass the final/ folder of an SFT run")
        (tmp / PROVENANCE).write_text(json.dumps(provenance, indent=1, default=str) + "\n")
    return dest
