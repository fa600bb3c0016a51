"""What the numbered notebooks (01-05) share: where data and runs live, the small setting, recorded values.

A notebook is narrative plus calls into ``stvg_lab``; this module holds what the notebooks would
otherwise each repeat, so that the tests reach all of it:

* **Paths, resolved through the package** (no ``sys.path`` tricks, no paths relative to the
  notebook): :func:`repo_root` is the checkout holding ``stvg_lab/``. :meth:`Workspace.open`
  resolves the dataset (``data/synthetic``, generated if missing) and the run folder the
  notebooks share (``runs/notebooks``): 02 writes ``sft/``, 03 ``grpo/``, 04 ``grid/``, 05 reads
  ``grpo/eval/`` (or writes ``scale_eval/``). So 03 starts from 02's SFT checkpoint and 05 plots
  03's evaluation without being told where they are.
* **The small setting** (``small=True``, or ``STVG_LAB_SMALL=1`` in the environment, which is how
  voila and the browser test ask for it): a 12/4/4-clip dataset and the runs in the system temp
  folder (``stvg_lab_notebooks_small/``), a few training steps, 2 generations, 2 evaluation
  samples, 48 new tokens. Each notebook then runs in seconds on 2 cores; the values are
  :data:`SETTINGS` (full, small) and :data:`SMALL_TRAINING`.
* **Re-running a notebook does not retrain**: :func:`train_or_reuse` returns the ``final/``
  checkpoint of a finished run whose saved recipe equals the one asked for, resumes an
  interrupted one, and refuses a finished run of another recipe (naming the fields that differ).
* **Recorded values**: :class:`Recorder` writes what a notebook records to the JSON file given
  by its ``record_path`` parameter (or ``STVG_LAB_RECORD``); ``tests/test_notebooks.py`` asserts
  on those values.
* :func:`hide_weight_progress_bars`: no progress bar per checkpoint loaded or saved.
* **Small table builders** the notebooks display: :func:`samples_table`,
  :func:`sample_statistics` / :func:`split_summary` (01), :func:`describe_rewards`,
  :func:`reward_examples` / :func:`reward_table` (03), :func:`run_status_table` (04).
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

import stvg_lab
from stvg_lab.analysis.grid import PAPER_GRID
from stvg_lab.data.sample import Sample
from stvg_lab.train.recipe import Recipe, load_recipe

if TYPE_CHECKING:
    import pandas as pd

    from stvg_lab.analysis.grid import GridResults

logger = logging.getLogger(__name__)

SMALL_ENV = "STVG_LAB_SMALL"
RECORD_ENV = "STVG_LAB_RECORD"
SMALL_DIR_NAME = "stvg_lab_notebooks_small"
FULL_COUNTS: dict[str, int] = {"train": 3000, "val": 50, "test": 100}
"""Clips per split of the default synthetic dataset (the CLI's ``stvg-lab data synth`` defaults)."""
SMALL_COUNTS: dict[str, int] = {"train": 12, "val": 4, "test": 4}
"""Clips per split in the small setting."""
STAGES: tuple[str, ...] = ("sft", "grpo")

SMALL_TRAINING: dict[str, dict[str, Any]] = {
    # batch 2 and no warm-up: with 4 steps a warm-up would spend the first at lr 0; constant lr so
    # the few steps all move the model; save_steps beyond the run: no intermediate checkpoints to write
    "sft": {"per_device_batch_size": 2, "warmup_ratio": 0.0, "lr_scheduler_type": "constant",
            "logging_steps": 1, "save_steps": 10_000},
    # 2 completions per optimizer step = one prompt x num_generations 2; completions cut at 48 tokens
    "grpo": {"per_device_batch_size": 2, "warmup_ratio": 0.0, "lr_scheduler_type": "constant",
             "logging_steps": 1, "save_steps": 10_000, "max_completion_length": 48},
}
"""Recipe overrides of the small setting, per training stage (on top of the base recipe, usually ``tiny_cpu``)."""

SMALL_GRID: tuple[str, ...] = ("full", "no_think_bbox", "giou_only", "lambda_k=0.2")
"""The small setting's ablation grid: one variant beside ``full`` for each of Tables 5, 7 and 8
(Table 6 compares against ``full`` itself; its other row is ``no_think_reward``)."""

SETTINGS: dict[str, tuple[Any, Any]] = {
    "sft_steps": (None, 4),  # None: the recipe's max_steps (tiny_cpu: 2500)
    "grpo_steps": (None, 2),
    "num_generations": (None, 2),  # None: the recipe's (tiny_cpu_grpo: 8)
    "max_eval_samples": (None, 2),  # None: the whole split
    "max_new_tokens": (None, 48),  # None: the answer-length budget of each clip (stvg_lab.infer)
    "grid_variants": (PAPER_GRID, SMALL_GRID),
    "grid_seeds": ((0, 1, 2), (0,)),
}
"""``name: (full value, small value)`` for :meth:`Workspace.setting`; a notebook parameter left at
None takes the value of its setting."""


def stage_recipe(base: str | Path, stage: str) -> str | Path:
    """``base``, or for ``stage == "grpo"`` the shipped ``<base>_grpo`` recipe when it exists (``tiny_cpu`` -> ``tiny_cpu_grpo``)."""
    from stvg_lab.train.recipe import RECIPES_DIR

    name = Path(str(base)).stem
    if stage == "grpo" and Path(str(base)).suffix == "" and (RECIPES_DIR / f"{name}_grpo.yaml").is_file():
        return f"{name}_grpo"
    return base


# --------------------------------------------------------------------------- environment and paths


def small_from_env(default: bool = False) -> bool:
    """``STVG_LAB_SMALL`` as a bool (``"1"``, ``"true"``, ``"yes"`` are true); ``default`` when unset."""
    value = os.environ.get(SMALL_ENV)
    if value is None or not value.strip():
        return default
    if value.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if value.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"environment variable {SMALL_ENV}={value!r}: use 1 (small and fast) or 0")


def record_path_from_env() -> str | None:
    """``STVG_LAB_RECORD`` (the JSON file a notebook records to), or None when unset."""
    return os.environ.get(RECORD_ENV) or None


def _is_checkout(path: Path) -> bool:
    return (path / "pyproject.toml").is_file() and (path / "stvg_lab" / "__init__.py").is_file()


def repo_root() -> Path:
    """The checkout the package belongs to: the folder holding ``pyproject.toml`` and ``stvg_lab/``.

    Found from the package's own location (an editable install or a source checkout), else from
    the current folder and its parents. A package installed into site-packages has no checkout:
    then FileNotFoundError says to pass ``data_dir`` and ``run_dir`` explicitly.
    """
    package_parent = Path(stvg_lab.__file__).resolve().parent.parent
    for candidate in (package_parent, Path.cwd().resolve(), *Path.cwd().resolve().parents):
        if _is_checkout(candidate):
            return candidate
    raise FileNotFoundError(
        f"stvg_lab is installed at {package_parent}, outside a checkout, and no folder from {Path.cwd()} up holds "
        "pyproject.toml + stvg_lab/; pass data_dir and run_dir to the notebook explicitly"
    )


def hide_weight_progress_bars() -> None:
    """Turn off transformers' progress bars for loading and writing weights (global, for this process).

    Every checkpoint a notebook loads or saves would otherwise leave two bars in the cell's
    output; the trainer's own progress bar and the log are unaffected.
    """
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def small_root() -> Path:
    """Where the small setting keeps its dataset and runs: ``<temp>/stvg_lab_notebooks_small``."""
    return Path(tempfile.gettempdir()) / SMALL_DIR_NAME


def default_data_dir(small: bool = False) -> Path:
    """``<repo>/data/synthetic``, or ``<temp>/stvg_lab_notebooks_small/data`` when ``small``."""
    return small_root() / "data" if small else repo_root() / "data" / "synthetic"


def default_run_dir(small: bool = False) -> Path:
    """``<repo>/runs/notebooks``, or ``<temp>/stvg_lab_notebooks_small/runs`` when ``small``."""
    return small_root() / "runs" if small else repo_root() / "runs" / "notebooks"


def formats_fixtures_dir() -> Path:
    """``<repo>/tests/fixtures/formats``: made-up annotations in the real HC-STVG v2 and VidSTG layouts."""
    path = repo_root() / "tests" / "fixtures" / "formats"
    if not path.is_dir():
        raise FileNotFoundError(f"{path} not found; the real-format fixtures live in the repository's tests/ folder")
    return path


def ensure_dataset(root: str | Path, counts: Mapping[str, int] = FULL_COUNTS, seed: int = 0) -> Path:
    """The synthetic dataset at ``root`` with ``counts`` clips per split, generated if missing
    (:func:`stvg_lab.data.synth.ensure_synthetic`)."""
    from stvg_lab.data.synth import ensure_synthetic

    return ensure_synthetic(root, counts["train"], counts["val"], counts["test"], seed=seed)


# --------------------------------------------------------------------------- the workspace


@dataclass(frozen=True)
class Workspace:
    """The dataset and the run folder the notebooks share, and the small setting.

    ``data``: the dataset root (``dataset``: ``synthetic``, or a real layout of
    ``stvg_lab.train.dataset``); ``runs``: the shared run folder, one sub-folder per stage
    (:meth:`stage`); ``small``: the small-and-fast setting (module docstring).
    """

    data: Path
    runs: Path
    small: bool = False
    dataset: str = "synthetic"

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        run_dir: str | Path | None = None,
        *,
        small: bool = False,
        dataset: str = "synthetic",
        data_seed: int = 0,
    ) -> "Workspace":
        """Resolve the folders (None: :func:`default_data_dir`, :func:`default_run_dir`) and make the data.

        A missing synthetic dataset is generated (:func:`ensure_dataset`: the default 3000/50/100
        clips, or 12/4/4 when ``small``, from ``data_seed``); a real dataset must already be placed.
        """
        data = Path(data_dir) if data_dir is not None else default_data_dir(small)
        runs = Path(run_dir) if run_dir is not None else default_run_dir(small)
        if dataset == "synthetic":
            ensure_dataset(data, SMALL_COUNTS if small else FULL_COUNTS, seed=data_seed)
        elif not data.is_dir():
            raise FileNotFoundError(f"data_dir {data} not found; place the {dataset} files as data/README.md describes")
        runs.mkdir(parents=True, exist_ok=True)
        return cls(data.resolve(), runs.resolve(), bool(small), dataset)

    def setting(self, name: str, value: Any = None) -> Any:
        """``value`` when given, else the setting's full or small default (:data:`SETTINGS`)."""
        if name not in SETTINGS:
            raise KeyError(f"unknown notebook setting {name!r}; settings: {sorted(SETTINGS)}")
        if value is not None:
            return value
        full, small = SETTINGS[name]
        default = small if self.small else full
        return list(default) if isinstance(default, tuple) else default

    def stage(self, name: str) -> Path:
        """The run folder of one notebook stage: ``runs/<name>`` (``sft``, ``grpo``, ``grid``, ...)."""
        return self.runs / name

    def recipe(
        self,
        stage: str,
        *,
        base: str | Path = "tiny_cpu",
        model: str = "tiny",
        steps: int | None = None,
        seed: int = 0,
        num_generations: int | None = None,
        **overrides: Any,
    ) -> Recipe:
        """The recipe of training ``stage`` (``sft`` or ``grpo``): ``base`` + this workspace + the small setting.

        For GRPO a shipped ``<base>_grpo`` recipe (``tiny_cpu_grpo``) is used when there is one
        (:func:`stage_recipe`).

        Sets ``data``, ``dataset``, ``model``, ``seed``, ``output_dir`` (:meth:`stage`) and
        ``name``; when small, :data:`SMALL_TRAINING` of the stage. ``steps`` and
        ``num_generations`` left at None take :meth:`setting` (the recipe's own value outside the
        small setting). ``overrides`` (e.g. ``init_from``, ``reward_variant``) are applied last.
        """
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
        values: dict[str, Any] = {
            "name": f"notebook-{stage}", "data": str(self.data), "dataset": self.dataset, "model": model,
            "seed": int(seed), "output_dir": str(self.stage(stage)),
        }
        if self.small:
            values.update(SMALL_TRAINING[stage])
        steps = self.setting(f"{stage}_steps", steps)
        if steps is not None:
            values["max_steps"] = int(steps)
        if stage == "grpo":
            generations = self.setting("num_generations", num_generations)
            if generations is not None:
                values["num_generations"] = int(generations)
        values.update(overrides)
        return load_recipe(stage_recipe(base, stage), **values)

    def samples(self, split: str) -> list[Sample]:
        """Every sample of ``split``, read as training reads them (``stvg_lab.train.dataset.load_samples``)."""
        from stvg_lab.train.dataset import load_samples

        return load_samples(load_recipe("tiny_cpu", data=str(self.data), dataset=self.dataset), split)

    def eval_samples(self, n: int | None = None, split: str = "test") -> list[Sample]:
        """The first ``n`` samples of ``split`` (None: :meth:`setting` ``max_eval_samples``: all, or 2 when small)."""
        samples = self.samples(split)
        n = self.setting("max_eval_samples", n)
        return samples if n is None else samples[: int(n)]

    def sft_checkpoint(
        self, path: str | Path | None = None, *, base: str | Path = "tiny_cpu", model: str = "tiny", seed: int = 0
    ) -> Path:
        """The SFT checkpoint GRPO starts from: ``path`` if given, else 02's ``sft/final``, trained here if missing.

        A given ``path`` must be a checkpoint folder (``config.json``), or ``"shipped"``: the
        package's SFT checkpoint (:mod:`stvg_lab.train.shipped`, the curriculum's stand-in that
        reads the frames), refused with the differing fields unless this workspace's data is the
        benchmark it was trained on. 02's checkpoint is used whatever recipe made it; when there is
        none it is trained with 02's default recipe (:meth:`recipe` ``("sft", base=base,
        model=model, seed=seed)``) into ``runs/sft``.
        """
        if path == "shipped":
            from stvg_lab.train.shipped import check_compatible, shipped_checkpoint

            check_compatible(shipped_checkpoint(), self.data)
            return shipped_checkpoint()
        if path is not None:
            path = Path(path)
            if not (path / "config.json").is_file():
                raise FileNotFoundError(f"sft_checkpoint {path} is not a checkpoint folder (no config.json); "
                                        "give the final/ folder of an SFT run, or None to use notebook 02's")
            return path
        final = self.stage("sft") / "final"
        if (final / "config.json").is_file():
            return final
        from stvg_lab.train.sft import run_sft

        logger.info("no SFT checkpoint in %s: training one with notebook 02's recipe", final.parent)
        return train_or_reuse(run_sft, self.recipe("sft", base=base, model=model, seed=seed))[0]

    def evaluation(
        self,
        eval_dir: str | Path | None = None,
        *,
        base: str | Path = "tiny_cpu",
        model: str = "tiny",
        max_eval_samples: int | None = None,
        max_new_tokens: int | None = None,
    ) -> Path:
        """A folder holding ``per_sample.jsonl``: ``eval_dir``, else 03's ``grpo/eval``, else one made here.

        Made here: the newest checkpoint (03's ``grpo/final``, else :meth:`sft_checkpoint`, trained
        if missing) evaluated on :meth:`eval_samples` into ``runs/scale_eval``.
        """
        if eval_dir is not None:
            path = Path(eval_dir)
            if not (path / "per_sample.jsonl").is_file():
                raise FileNotFoundError(f"eval_dir {path} holds no per_sample.jsonl (written by stvg_lab.evaluate.evaluate_model)")
            return path
        grpo_eval = self.stage("grpo") / "eval"
        if (grpo_eval / "per_sample.jsonl").is_file():
            return grpo_eval
        from stvg_lab.evaluate import evaluate_model

        grpo_final = self.stage("grpo") / "final"
        checkpoint = grpo_final if (grpo_final / "config.json").is_file() else self.sft_checkpoint(base=base, model=model)
        out = self.stage("scale_eval")
        logger.info("no evaluation of notebook 03 in %s: evaluating %s into %s", grpo_eval, checkpoint, out)
        evaluate_model(checkpoint, self.eval_samples(max_eval_samples), out,
                       max_new_tokens=self.setting("max_new_tokens", max_new_tokens), resume=False, progress=False)
        return out


def train_or_reuse(run: Callable[..., Path], recipe: Recipe) -> tuple[Path, bool]:
    """``(final checkpoint, trained)``: train ``recipe`` with ``run`` (``run_sft``/``run_grpo``) unless done.

    * ``output_dir/final/recipe.yaml`` equals ``recipe``: that finished run is reused (``trained`` False).
    * it holds another recipe: FileExistsError naming the fields that differ.
    * ``checkpoint-*`` folders without ``final/``: an interrupted run, resumed.
    * otherwise a fresh run.
    """
    out = Path(recipe.output_dir)
    saved = out / "final" / "recipe.yaml"
    if saved.is_file():
        old = load_recipe(saved).to_dict()
        new = recipe.to_dict()
        if old == new:
            logger.info("%s: reusing the finished run of the same recipe", out)
            return out / "final", False
        changed = sorted(k for k in new if old.get(k) != new[k])
        raise FileExistsError(
            f"{out} holds a finished run of another recipe (fields {', '.join(changed)} differ); pass another "
            f"run_dir, or delete {out} to train this recipe there"
        )
    if out.is_dir() and any(out.glob("checkpoint-*")):
        logger.info("%s: resuming the interrupted run from its last checkpoint", out)
        return Path(run(recipe, resume=True)), True
    return Path(run(recipe)), True


# --------------------------------------------------------------------------- recording values


def _plain(value: Any) -> Any:
    """JSON-able: numpy scalars and arrays, tuples, Paths and mappings converted recursively."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot record a {type(value).__name__} ({value!r:.80}); record numbers, strings, lists or dicts")


class Recorder:
    """The values a notebook records for its test, written as one JSON object to ``path``.

    ``record(name, value)`` stores ``value`` (converted to JSON types) and returns it unchanged,
    so a notebook can record in passing. The file is rewritten atomically after every call;
    ``path`` None keeps the values in memory only (``.values``). A path given as a string or
    Path is used as is; ``Recorder.from_env()`` takes ``STVG_LAB_RECORD``.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.values: dict[str, Any] = {}

    @classmethod
    def from_env(cls) -> "Recorder":
        return cls(record_path_from_env())

    def __call__(self, name: str, value: Any) -> Any:
        self.values[str(name)] = _plain(value)
        self._write()
        return value

    def update(self, values: Mapping[str, Any]) -> None:
        """Record several values at once."""
        for name, value in values.items():
            self.values[str(name)] = _plain(value)
        self._write()

    def _write(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(json.dumps(self.values, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- tables (01)


def samples_table(samples: Sequence[Sample], query_chars: int = 60) -> "pd.DataFrame":
    """One row per sample: id, dataset, query, fps, frames, size, tube frames (first-last), boxes, extras' ``qtype``."""
    import pandas as pd

    rows = []
    for s in samples:
        first, last = s.span_frames
        query = s.query if len(s.query) <= query_chars else s.query[: query_chars - 1] + "…"
        rows.append({
            "id": s.id, "dataset": s.dataset, "query": query, "fps": round(float(s.fps), 3), "frames": s.num_frames,
            "size": f"{s.width}x{s.height}", "tube frames": f"{first}–{last}", "boxes": len(s.tube),
            "qtype": s.extras.get("qtype", ""),
        })
    return pd.DataFrame(rows)


TAG_COLUMNS: tuple[str, ...] = ("small", "short", "occluded")


def sample_statistics(samples_by_split: Mapping[str, Sequence[Sample]]) -> "pd.DataFrame":
    """One row per sample: split, id, tube length and position, box area ratio, in-frame check, tags.

    Columns: ``split``, ``id``, ``tube_frames`` (annotated frames), ``tube_seconds`` (first to
    last frame inclusive, at the video's fps), ``start_fraction`` (tube start / video length),
    ``area_ratio`` (mean gt box area / frame area, as ``stvg_lab.evaluate.gt_area_ratio``, the
    object scale of Fig. 4), ``inside_frame`` (every box has ``0 <= x1 < x2 <= W`` and
    ``0 <= y1 < y2 <= H``), the synthetic tags ``small``/``short``/``occluded`` (None for real
    data), ``event`` and ``n_distractors`` (None when absent).
    """
    import pandas as pd

    from stvg_lab.evaluate import gt_area_ratio

    rows = []
    for split, samples in samples_by_split.items():
        for s in samples:
            first, last = s.span_frames
            boxes = np.asarray(list(s.tube.values()), dtype=np.float64)  # (n, 4) x1 y1 x2 y2
            inside = bool(np.all((boxes[:, 0] >= 0) & (boxes[:, 1] >= 0) & (boxes[:, 2] <= s.width)
                                 & (boxes[:, 3] <= s.height) & (boxes[:, 0] < boxes[:, 2]) & (boxes[:, 1] < boxes[:, 3])))
            row = {
                "split": split, "id": s.id, "tube_frames": len(s.tube), "tube_seconds": (last - first + 1) / s.fps,
                "start_fraction": first / s.num_frames, "area_ratio": gt_area_ratio(s), "inside_frame": inside,
            }
            for tag in TAG_COLUMNS:
                row[tag] = bool(s.extras[tag]) if tag in s.extras else None
            row["event"] = s.extras.get("event")
            row["n_distractors"] = s.extras.get("n_distractors")
            rows.append(row)
    return pd.DataFrame(rows)


def split_summary(stats: "pd.DataFrame") -> "pd.DataFrame":
    """Per split of :func:`sample_statistics`: samples, tube seconds (mean/min/max), mean area ratio,
    % small / short / occluded (of samples carrying the tag), whether every tube lies inside its frame."""
    import pandas as pd

    rows = []
    for split, group in stats.groupby("split", sort=False):
        row = {
            "split": split, "samples": len(group), "tube s (mean)": group["tube_seconds"].mean(),
            "tube s (min)": group["tube_seconds"].min(), "tube s (max)": group["tube_seconds"].max(),
            "area ratio (mean)": group["area_ratio"].mean(),
        }
        for tag in TAG_COLUMNS:
            known = group[tag].dropna()
            row[f"% {tag}"] = 100.0 * known.astype(bool).mean() if len(known) else math.nan
        row["all inside frame"] = bool(group["inside_frame"].all())
        rows.append(row)
    return pd.DataFrame(rows).round(3)


# --------------------------------------------------------------------------- rewards (03)

REWARD_SYMBOLS: dict[str, tuple[str, str]] = {
    "format_reward": ("R_f", "Eq. 3"),
    "consistency_reward": ("R_c", "Eq. 4"),
    "temporal_reward": ("R_t", "Eq. 5"),
    "spatial_reward": ("R_s", "Eq. 6-8"),
    "think_reward": ("R_k", "Eq. 9"),
}
"""Reward function name (its stem: variants add ``_giou`` and the like) -> symbol and equation."""
TOTAL_COLUMN = "R (Eq. 10)"


def _symbol(name: str) -> tuple[str, str]:
    for stem, value in REWARD_SYMBOLS.items():
        if name == stem or name.startswith(stem + "_"):
            return value
    raise KeyError(f"reward function {name!r} is not one of the paper's rewards {sorted(REWARD_SYMBOLS)}")


def describe_rewards(variant: str = "full", lambda_k: float = 0.5) -> "pd.DataFrame":
    """The reward callables GRPO gets for ``variant``: name, symbol, equation, weight in Eq. 10, range, what it pays.

    From :func:`stvg_lab.reward_variants.reward_setup` (the functions and ``reward_weights`` handed to
    TRL) and :data:`stvg_lab.rewards.REWARD_BOUNDS`; "what" is the first line of each docstring.
    """
    import pandas as pd

    from stvg_lab.reward_variants import reward_setup
    from stvg_lab.rewards import REWARD_BOUNDS

    funcs, weights = reward_setup(variant, lambda_k)
    rows = []
    for f, w in zip(funcs, weights):
        symbol, eq = _symbol(f.__name__)
        doc = inspect.getdoc(f) or ""
        lo, hi = REWARD_BOUNDS.get(f.__name__, (math.nan, math.nan))
        what = doc.splitlines()[0].replace("``", "") if doc else ""  # rst literals read badly in a table
        rows.append({"reward function": f.__name__, "symbol": symbol, "equation": eq, "weight": w,
                     "range": f"[{lo:g}, {hi:g}]", "what": what})
    return pd.DataFrame(rows)


def reward_examples(
    sample: Sample,
    fmt: str = "paper",
    *,
    fps: float = 2.0,
    max_side: int = 336,
    shift_frames: int = 1,
    shift_px: float = 8.0,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Example answers for ``sample`` and the reward columns they are scored against.

    Answers (on the model's frames, as GRPO sees them: ``fps``, ``max_side``):

    * ``perfect``: the ground truth, think list = pred list;
    * ``sft target``: what SFT trains on (``stvg_lab.train.dataset.sft_target``: think boxes
      snapped outward to the 28-px token grid), so ``R_k > 0``;
    * ``shifted``: the ground truth ``shift_frames`` sampled frames later (span clipped to the
      clip) and ``shift_px`` to the right;
    * ``missing box``: the perfect answer without the last frame's boxes (inconsistent, Eq. 4),
      only when the span holds two frames or more and the format labels its boxes with frames;
    * ``truncated``: the perfect answer cut after 60 % of its characters, as a completion
      stopped by ``max_completion_length`` is (it does not parse).

    Columns: ``gt_span``, ``gt_tube``, ``frame_size`` (``stvg_lab.video.reward_columns``).
    """
    from stvg_lab.answer import format_answer, get_format
    from stvg_lab.train.dataset import clip_layout, sft_target
    from stvg_lab.video import reward_columns, tube_to_model

    layout = clip_layout(sample, fps, max_side)
    columns = reward_columns(sample, layout.frame_numbers, layout.size)
    (s, e), boxes = tube_to_model(sample, layout.frame_numbers, layout.size)
    last_index = len(layout.frame_numbers) - 1
    width = float(layout.size[0])
    shifted = {k + shift_frames: [min(b[0] + shift_px, width), b[1], min(b[2] + shift_px, width), b[3]]
               for k, b in boxes.items() if 0 <= k + shift_frames <= last_index}
    perfect = format_answer((s, e), boxes, boxes, fmt)
    answers = {"perfect": perfect, "sft target": sft_target(sample, layout, fmt)}
    if shifted:
        answers["shifted"] = format_answer((min(shifted), max(shifted)), shifted, shifted, fmt)
    if e > s and get_format(fmt).frame_labels:
        kept = {k: b for k, b in boxes.items() if k != e}
        answers["missing box"] = format_answer((s, e), kept, kept, fmt)
    answers["truncated"] = perfect[: int(0.6 * len(perfect))]
    return answers, columns


def reward_table(
    answers: Mapping[str, str],
    columns: Mapping[str, Any],
    *,
    variant: str = "full",
    lambda_k: float = 0.5,
    answer_format: str = "paper",
) -> "pd.DataFrame":
    """Every reward of every answer, computed by calling the GRPO reward functions exactly as TRL does.

    TRL calls each function of :func:`stvg_lab.reward_variants.reward_setup` once per batch with
    ``completions`` and every dataset column as a list (one entry per completion), then sums the
    results with ``reward_weights`` (Eq. 10). Rows: the answers; columns ``R_f (Eq. 3)`` ...
    ``R_k (Eq. 9)``, :data:`TOTAL_COLUMN`, and ``parse error`` (the parser's code, empty when it parsed).
    """
    import pandas as pd

    from stvg_lab.answer import parse_answer
    from stvg_lab.reward_variants import reward_setup

    funcs, weights = reward_setup(variant, lambda_k)
    texts = list(answers.values())
    batch = {name: [value] * len(texts) for name, value in columns.items()}
    batch["answer_format"] = [answer_format] * len(texts)
    data: dict[str, Any] = {}
    total = np.zeros(len(texts))
    for f, w in zip(funcs, weights):
        values = np.asarray(f(texts, **batch), dtype=np.float64)  # (N,)
        symbol, eq = _symbol(f.__name__)
        data[f"{symbol} ({eq})"] = values
        total += w * values
    data[TOTAL_COLUMN] = total
    data["parse error"] = [parse_answer(t, answer_format).error or "" for t in texts]
    return pd.DataFrame(data, index=list(answers)).round(4)


# --------------------------------------------------------------------------- grid (04)


def run_status_table(grid: "GridResults") -> "pd.DataFrame":
    """One row per (variant, seed) of a grid: status (``trained``, ``evaluated``, ``cached``, ...), run hash, pred m_vIoU."""
    import pandas as pd

    rows = []
    for r in grid.runs:
        pred = (r.metrics or {}).get("pred") or {}
        rows.append({"variant": r.variant, "seed": r.seed, "status": r.status, "run": r.run_hash,
                     "pred m_vIoU": pred.get("m_vIoU"), "error": r.error or ""})
    return pd.DataFrame(rows)
