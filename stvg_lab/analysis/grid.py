"""The ablation grid of Tables 5-8: variants × seeds from shared SFT checkpoints, trained once, evaluated, cached.

:func:`run_grid` takes a :class:`GridSpec` (variant names, seeds, a base recipe) and, for every
(variant, seed):

1. resolves the variant's recipe: ``base_recipe`` + :func:`variant_overrides` + the seed + the
   shared SFT checkpoint of the recipe's answer format as ``init_from``;
2. trains it with GRPO (``train_fn``, default :func:`stvg_lab.train.grpo.run_grpo`), unless the
   run directory already records a finished training for the same recipe;
3. evaluates the checkpoint (``eval_fn``, default :func:`stvg_lab.evaluate.evaluate_model` on the
   recipe's ``eval_split``), unless the run is already done;
4. collects the metrics into a tidy table (variant, seed, tube, metric, value).

Variants (``VARIANTS``; the paper's grid is ``PAPER_GRID``):

* ``full``: the base recipe (paper: all five rewards, λk = 0.5, ``<think_bbox>``);
* ``no_think_bbox`` (Table 5): answer format without ``<think_bbox>`` (``paper`` → ``no_think``,
  ``compact`` → ``compact_no_think``) and reward variant ``no_think_bbox``. It needs its own SFT
  checkpoint trained on the no-think format: a model fine-tuned to write ``<think_bbox>`` cannot
  answer in a format without it (its answers would all fail to parse, every reward would be 0).
  SFT checkpoints are therefore shared *per answer format*;
* ``no_think_reward`` (Table 6), ``giou_only`` / ``l1_only`` (Table 7), ``overlap_penalty``,
  ``count_penalty``, ``count_symmetric``, ``union_spatial``, ``viou_metric``, ``viou_giou``, ``iou_intersection``, ``centre_hit`` (ours): the reward variant of
  that name (``stvg_lab.reward_variants.reward_setup``);
* ``lambda_k=<x>`` (Table 8), any float: the think-reward weight. ``lambda_k=0.5`` is the same
  recipe as ``full`` (λk = 0.5 in the paper's recipe) and therefore the same run.

Caching. Each run lives in ``out_dir/runs/<hash>/`` where ``<hash>`` is :func:`recipe_hash` of its
resolved recipe: every field except the bookkeeping ones in :data:`VOLATILE_FIELDS` (name, output
dir, logging and saving cadence), with ``init_from`` replaced by the identity of the SFT
checkpoint (``sft:<hash of the SFT recipe>`` for one the grid trained, the path and
:func:`stvg_lab.checkpoints.checkpoint_fingerprint` for one given in ``sft_checkpoints``, so that new
weights at the same path train new runs), so the grid folder can be moved. Two variants that resolve to the same recipe
share one run. A run directory holds::

    recipe.yaml        the resolved recipe (written before training)
    train/             the training run (recipe.output_dir)
    checkpoint.json    "trained": {recipe_hash, checkpoint}; written atomically after train_fn returns
    eval/              the evaluation (predictions.jsonl, metrics.json, per_sample.jsonl)
    metrics.json       "done": {recipe_hash, eval_hash, variants, seed, checkpoint, metrics}

``metrics.json`` is written to a temporary file and renamed into place, so a run is *done* only
when it is complete; a crash (in training or evaluation) leaves no ``metrics.json`` and the next
call retries that run (a finished training is not repeated: ``checkpoint.json`` records it). The
eval hash covers the evaluation settings (``eval_kwargs``, ``max_eval_samples``) and
:data:`SCORING_VERSION`: changing them re-evaluates without retraining. SFT checkpoints are cached the same way under
``out_dir/sft/<answer format>-<hash>/`` (``checkpoint.json`` marks them done), trained only when a
run that needs one must train.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import traceback
import uuid
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from stvg_lab.analysis.workers import check_picklable, run_in_workers, threads_per_worker
from stvg_lab.answer import get_format, without_think
from stvg_lab.checkpoints import checkpoint_fingerprint
from stvg_lab.train.recipe import Recipe, load_recipe

logger = logging.getLogger(__name__)

TrainFn = Callable[[Recipe], Path]
EvalFn = Callable[[Path, Recipe, Path], Mapping[str, Any]]

METRICS: tuple[str, ...] = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
TUBES: tuple[str, ...] = ("think", "pred")
VOLATILE_FIELDS: frozenset[str] = frozenset(
    {"name", "output_dir", "report_to", "log_completions", "logging_steps", "save_steps", "save_total_limit",
     "dataloader_num_workers", "clip_cache_items"}
)
"""Recipe fields that do not change what a run learns; left out of :func:`recipe_hash`."""

VARIANTS: dict[str, dict[str, Any]] = {
    "full": {"reward_variant": "full"},
    "no_think_bbox": {"reward_variant": "no_think_bbox"},  # + the no-think answer format, see variant_overrides
    "no_think_reward": {"reward_variant": "no_think_reward"},
    "giou_only": {"reward_variant": "giou_only"},
    "l1_only": {"reward_variant": "l1_only"},
    "overlap_penalty": {"reward_variant": "overlap_penalty"},
    "count_penalty": {"reward_variant": "count_penalty"},
    "count_symmetric": {"reward_variant": "count_symmetric"},
    "union_spatial": {"reward_variant": "union_spatial"},
    "viou_metric": {"reward_variant": "viou_metric"},
    "viou_giou": {"reward_variant": "viou_giou"},
    "iou_intersection": {"reward_variant": "iou_intersection"},
    "centre_hit": {"reward_variant": "centre_hit"},
}
"""Named variants -> recipe overrides; ``lambda_k=<x>`` is parsed by :func:`variant_overrides`."""
PAPER_GRID: tuple[str, ...] = (
    "full", "no_think_bbox", "no_think_reward", "giou_only", "l1_only",
    "lambda_k=0", "lambda_k=0.2", "lambda_k=0.5", "lambda_k=1.0",
)
"""The variants of the paper's Tables 5-8 (plus λk = 0)."""
MARKER_TRAINED = "checkpoint.json"
MARKER_DONE = "metrics.json"
SCORING_VERSION = 3
"""What the default evaluation scores; raised when it scores more, so cached runs are scored again.
2: the baselines and each run's pred-span control (``metrics.json`` ``controls``); 3: the answers'
reward terms (``metrics.json`` and ``per_sample.jsonl`` ``reward``). The kept answers are scored
again, not asked again (``answers_from.json``)."""
RECIPE_FILE = "recipe.yaml"
WORKER_LOG = "worker.log"


def variant_overrides(variant: str, base_format: str = "paper") -> dict[str, Any]:
    """Recipe overrides of one grid variant (module docstring), for a base answer format ``base_format``.

    ``no_think_bbox`` switches to the no-think counterpart of ``base_format``. Every other
    variant needs a format with ``<think_bbox>`` and raises ValueError otherwise.
    """
    if variant.startswith("lambda_k="):
        try:
            lam = float(variant.split("=", 1)[1])
        except ValueError:
            raise ValueError(f"grid variant {variant!r}: the value after 'lambda_k=' must be a number") from None
        overrides: dict[str, Any] = {"reward_variant": "full", "lambda_k": lam}
    elif variant in VARIANTS:
        overrides = dict(VARIANTS[variant])
    else:
        raise ValueError(f"unknown grid variant {variant!r}; choose from {sorted(VARIANTS)} or 'lambda_k=<number>'")
    if variant == "no_think_bbox":
        overrides["answer_format"] = without_think(base_format)
    elif not get_format(base_format).think:
        raise ValueError(
            f"grid variant {variant!r} needs an answer format with <think_bbox>, but the base recipe uses "
            f"{base_format!r}; set the base recipe's answer_format to 'paper' or 'compact'"
        )
    return overrides


def recipe_hash(recipe: Recipe, init_identity: str | None = None) -> str:
    """12 hex digits of SHA-256 over the recipe's fields minus :data:`VOLATILE_FIELDS`.

    ``init_identity`` replaces ``init_from`` (so a run is keyed by *which* SFT checkpoint it
    starts from, not by where that checkpoint lies on disk).
    """
    values = {k: v for k, v in recipe.to_dict().items() if k not in VOLATILE_FIELDS}
    if init_identity is not None:
        values["init_from"] = init_identity
    blob = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:12]


def _hash_of(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode("utf-8")).hexdigest()[:12]


@dataclass
class GridSpec:
    """A declared grid: ``variants`` × ``seeds`` from ``base_recipe``.

    * ``base_recipe``: a :class:`Recipe`, a shipped recipe name or a YAML path.
    * ``sft_checkpoints``: answer format -> an existing SFT checkpoint (``final/`` folder) to
      start GRPO from; formats not listed are trained by the grid (``sft_fn``) and cached.
    * ``sft_overrides``: recipe overrides for the grid's own SFT runs (e.g. ``max_steps``).
    * ``extra_overrides``: variant -> further recipe overrides for that variant only.
    * ``eval_kwargs``: passed to :func:`stvg_lab.evaluate.evaluate_model` by the default eval;
      ``max_eval_samples`` keeps the first N samples of the eval split.
    """

    variants: list[str]
    seeds: list[int]
    base_recipe: Recipe | str | Path = "tiny_cpu"
    sft_checkpoints: dict[str, str | Path] = field(default_factory=dict)
    sft_overrides: dict[str, Any] = field(default_factory=dict)
    extra_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_kwargs: dict[str, Any] = field(default_factory=dict)
    max_eval_samples: int | None = None
    name: str = "grid"

    def __post_init__(self) -> None:
        if not self.variants or not self.seeds:
            raise ValueError("GridSpec: variants and seeds must both be non-empty")
        if len(set(self.variants)) != len(self.variants):
            raise ValueError(f"GridSpec.variants has duplicates: {self.variants}")
        unknown = set(self.extra_overrides) - set(self.variants)
        if unknown:
            raise ValueError(f"GridSpec.extra_overrides names variants not in the grid: {sorted(unknown)}")

    def base(self) -> Recipe:
        """The base recipe as a :class:`Recipe`."""
        if isinstance(self.base_recipe, Recipe):
            return self.base_recipe
        return load_recipe(self.base_recipe)

    def eval_identity(self) -> str:
        """Hash of the evaluation settings and :data:`SCORING_VERSION` (changing either re-evaluates without retraining)."""
        return _hash_of({"eval_kwargs": self.eval_kwargs, "max_eval_samples": self.max_eval_samples, "scoring": SCORING_VERSION})


@dataclass
class RunResult:
    """One (variant, seed) of the grid: where it lives, what happened this call, its metrics."""

    variant: str
    seed: int
    run_hash: str
    run_dir: Path
    status: str  # cached | evaluated | trained | failed | missing
    metrics: dict[str, Any] | None = None
    checkpoint: Path | None = None
    error: str | None = None

    @property
    def eval_dir(self) -> Path:
        """Where the evaluation wrote ``predictions.jsonl`` and ``per_sample.jsonl``."""
        return self.run_dir / "eval"


@dataclass
class GridResults:
    """Every run of a grid and the SFT checkpoints used; :meth:`rows` is the tidy table."""

    out_dir: Path
    runs: list[RunResult]
    sft: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[RunResult]:
        return [r for r in self.runs if r.status == "failed"]

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows ``{variant, seed, tube, metric, value, run}``: values are fractions in [0, 1].

        One row per (run, tube, metric) for the four metrics of each tube the run has (a no-think
        run has no ``think`` rows). Runs without metrics (failed, missing) have no rows.
        """
        out = []
        for r in self.runs:
            if not r.metrics:
                continue
            for tube, scores in tube_metrics(r.metrics).items():
                for metric in METRICS:
                    out.append({"variant": r.variant, "seed": r.seed, "tube": tube, "metric": metric,
                                "value": float(scores[metric]), "run": r.run_hash})
        return out

    def to_frame(self):
        """:meth:`rows` as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=["variant", "seed", "tube", "metric", "value", "run"])

    def run(self, variant: str, seed: int) -> RunResult:
        """The run of ``variant`` and ``seed``; KeyError if the grid has none."""
        for r in self.runs:
            if r.variant == variant and r.seed == seed:
                return r
        raise KeyError(f"no run for variant {variant!r}, seed {seed} in {self.out_dir}")

    def per_sample(self, variant: str) -> list[dict[str, Any]]:
        """The ``per_sample.jsonl`` rows of every finished seed of ``variant`` (each row gains ``seed``)."""
        out = []
        for r in self.runs:
            path = r.eval_dir / "per_sample.jsonl"
            if r.variant != variant or not r.metrics or not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    out.append({**json.loads(line), "seed": r.seed})
        return out


def tube_metrics(metrics: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """``{"think": {...}, "pred": {...}}`` from an evaluation's ``metrics.json`` content.

    Reads the layout of :mod:`stvg_lab.evaluate` (``metrics["pred"]``, ``metrics["think"]``, the
    latter null for a no-think format). A tube whose entry is missing or null is left out;
    ``pred`` must be there. Raises ValueError naming the missing metric.
    """
    out = {}
    for tube in TUBES:
        scores = metrics.get(tube)
        if not scores:
            continue
        missing = [m for m in METRICS if m not in scores]
        if missing:
            raise ValueError(f"metrics[{tube!r}] lacks {missing}; expected the keys of stvg_lab.evaluate's metrics.json")
        out[tube] = {m: float(scores[m]) for m in METRICS}
    if "pred" not in out:
        raise ValueError(f"metrics has no 'pred' scores (keys: {sorted(metrics)}); expected stvg_lab.evaluate's metrics.json")
    return out


def _write_json_atomic(path: Path, obj: Any) -> None:
    """Write ``obj`` to a temporary file beside ``path`` and rename it into place (POSIX-atomic)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        logger.warning("%s is not valid JSON; treating the step it marks as not done", path)
        return None


def _resolve_checkpoint(marker_dir: Path, stored: str) -> Path:
    path = Path(stored)
    return path if path.is_absolute() else marker_dir / path


def _store_checkpoint(marker_dir: Path, checkpoint: Path) -> str:
    """The checkpoint path relative to ``marker_dir`` when inside it (so the grid folder can move)."""
    checkpoint = Path(checkpoint)
    try:
        return str(checkpoint.resolve().relative_to(marker_dir.resolve()))
    except ValueError:
        return str(checkpoint)


def _trained_checkpoint(run_dir: Path, h: str) -> Path | None:
    marker = _read_json(run_dir / MARKER_TRAINED)
    if marker and marker.get("recipe_hash") == h and marker.get("checkpoint"):
        return _resolve_checkpoint(run_dir, marker["checkpoint"])
    return None


def _fresh_or_resume(fn: Callable[..., Path], recipe: Recipe) -> Path:
    """Call a TRL trainer entry (``run_sft``/``run_grpo``): resume from its last checkpoint, else start clean.

    A crashed attempt may have left ``checkpoint-*`` folders (resume from the last) or a partial
    ``final/`` without checkpoints (removed: the trainers refuse a folder holding one).
    """
    out = Path(recipe.output_dir)
    if out.is_dir() and any(out.glob("checkpoint-*")):
        logger.info("%s: resuming the interrupted training from its last checkpoint", out)
        return Path(fn(recipe, resume=True))
    if (out / "final").exists():
        logger.warning("%s: removing final/ left by an interrupted run that was never marked done", out)
        shutil.rmtree(out / "final")
    return Path(fn(recipe))


def default_sft_fn(recipe: Recipe) -> Path:
    """:func:`stvg_lab.train.sft.run_sft`, resuming an interrupted run."""
    from stvg_lab.train.sft import run_sft

    return _fresh_or_resume(run_sft, recipe)


def default_train_fn(recipe: Recipe) -> Path:
    """:func:`stvg_lab.train.grpo.run_grpo`, resuming an interrupted run."""
    from stvg_lab.train.grpo import run_grpo

    return _fresh_or_resume(run_grpo, recipe)


def make_eval_fn(eval_kwargs: Mapping[str, Any] | None = None, max_eval_samples: int | None = None) -> EvalFn:
    """The default evaluation: ``evaluate_model(checkpoint, <recipe's eval_split>, out_dir, recipe.answer_format)``.

    Samples come from :func:`stvg_lab.train.dataset.load_samples` (the recipe's dataset and
    ``eval_split``), the first ``max_eval_samples`` when set; the recipe's training split gives the
    mean box of the baselines and of each run's pred-span control. ``eval_kwargs`` go to
    :func:`stvg_lab.evaluate.evaluate_model`. Returns the ``metrics.json`` content.
    """
    # a partial of a module-level function, not a closure: it must pickle for run_grid(workers > 1)
    return functools.partial(_default_eval, {"progress": False, **dict(eval_kwargs or {})}, max_eval_samples)


def _default_eval(kwargs: Mapping[str, Any], max_eval_samples: int | None, checkpoint: Path, recipe: Recipe,
                  out_dir: Path) -> Mapping[str, Any]:
    from stvg_lab.evaluate import evaluate_model
    from stvg_lab.train.dataset import load_samples

    samples = load_samples(recipe, recipe.eval_split)
    if max_eval_samples is not None:
        samples = samples[:max_eval_samples]
    given = {"train_samples": load_samples(recipe, recipe.train_split)} | dict(kwargs)  # eval_kwargs may bring their own
    return evaluate_model(checkpoint, samples, out_dir, recipe.answer_format, **given).metrics


@dataclass
class _Planned:
    variant: str
    seed: int
    recipe: Recipe
    run_hash: str
    sft_format: str


class _SFTCache:
    """Shared SFT checkpoints per answer format: given, cached on disk, or trained on first need."""

    def __init__(self, spec: GridSpec, base: Recipe, root: Path, sft_fn: TrainFn) -> None:
        self.spec, self.base, self.root, self.sft_fn = spec, base, root, sft_fn
        self.paths: dict[str, Path] = {}

    def recipe(self, fmt: str) -> Recipe:
        return self.base.replace(
            **{"init_from": "base", **self.spec.sft_overrides, "answer_format": fmt, "name": f"{self.spec.name}-sft-{fmt}"}
        )

    def identity(self, fmt: str) -> str:
        if fmt in self.spec.sft_checkpoints:  # the path and what is in it: new weights at the same path are another SFT
            path = self.spec.sft_checkpoints[fmt]
            return f"path:{path}@{checkpoint_fingerprint(path)}"
        return f"sft:{recipe_hash(self.recipe(fmt))}"

    def dir(self, fmt: str) -> Path:
        return self.root / f"{fmt}-{recipe_hash(self.recipe(fmt))}"

    def cached(self, fmt: str) -> Path | None:
        if fmt in self.spec.sft_checkpoints:
            return Path(self.spec.sft_checkpoints[fmt])
        d = self.dir(fmt)
        return _trained_checkpoint(d, recipe_hash(self.recipe(fmt)))

    def get(self, fmt: str) -> Path:
        if fmt in self.paths:
            return self.paths[fmt]
        path = self.cached(fmt)
        if path is None:
            d = self.dir(fmt)
            d.mkdir(parents=True, exist_ok=True)
            recipe = self.recipe(fmt).replace(output_dir=str(d / "train"))
            recipe.save(d / RECIPE_FILE)
            logger.info("grid %s: SFT for answer format %r in %s", self.spec.name, fmt, d)
            path = Path(self.sft_fn(recipe))
            _write_json_atomic(d / MARKER_TRAINED, {"recipe_hash": recipe_hash(recipe), "checkpoint": _store_checkpoint(d, path)})
        self.paths[fmt] = path
        return path


def plan_grid(spec: GridSpec, out_dir: str | Path) -> list[_Planned]:
    """The resolved recipe and hash of every (variant, seed), in grid order; nothing runs."""
    base = spec.base()
    sft = _SFTCache(spec, base, Path(out_dir) / "sft", sft_fn=lambda r: Path())
    planned = []
    for variant in spec.variants:
        overrides = {**variant_overrides(variant, base.answer_format), **spec.extra_overrides.get(variant, {})}
        for seed in spec.seeds:
            draft = base.replace(**overrides, seed=int(seed), name=f"{spec.name}-{variant}-s{seed}")
            fmt = draft.answer_format
            h = recipe_hash(draft, init_identity=sft.identity(fmt))
            planned.append(_Planned(variant, int(seed), draft, h, fmt))
    return planned


def run_grid(
    spec: GridSpec,
    out_dir: str | Path,
    train_fn: TrainFn | None = None,
    eval_fn: EvalFn | None = None,
    sft_fn: TrainFn | None = None,
    *,
    on_error: str = "raise",
    only_cached: bool = False,
    workers: int = 1,
) -> GridResults:
    """Train (GRPO) and evaluate every (variant, seed) of ``spec`` under ``out_dir``, reusing finished runs.

    ``train_fn(recipe) -> checkpoint`` defaults to :func:`default_train_fn` (``run_grpo``),
    ``sft_fn(recipe) -> checkpoint`` to :func:`default_sft_fn` (``run_sft``), ``eval_fn(checkpoint,
    recipe, out_dir) -> metrics`` to :func:`make_eval_fn` of the spec's eval settings; the metrics
    are the content of :mod:`stvg_lab.evaluate`'s ``metrics.json``. Caching and the run layout
    are in the module docstring. ``on_error="raise"`` re-raises the first failure (after
    logging it); ``"continue"`` records it in the run's ``error`` and goes on.
    ``only_cached=True`` trains and evaluates nothing: runs not done are reported ``missing``.
    ``workers > 1`` trains and evaluates the runs that are not done side by side, in that many spawned
    processes sharing the CPU threads (:mod:`stvg_lab.analysis.workers`; each run's output in its
    ``worker.log``); ``train_fn`` and ``eval_fn`` must then pickle. The SFT checkpoints the runs need are
    trained first, in this process. With ``on_error="raise"`` runs not yet started are cancelled
    after a failure. Also writes ``out_dir/results.jsonl`` (the tidy rows).
    """
    if on_error not in ("raise", "continue"):
        raise ValueError(f"on_error must be 'raise' or 'continue', got {on_error!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    out = Path(out_dir)
    base = spec.base()
    train_fn = train_fn or default_train_fn
    sft_fn = sft_fn or default_sft_fn
    eval_fn = eval_fn or make_eval_fn(spec.eval_kwargs, spec.max_eval_samples)
    eval_hash = spec.eval_identity()
    sft = _SFTCache(spec, base, out / "sft", sft_fn)
    planned = plan_grid(spec, out)
    variants_of: dict[str, list[str]] = {}
    for p in planned:
        variants_of.setdefault(p.run_hash, [])
        if p.variant not in variants_of[p.run_hash]:
            variants_of[p.run_hash].append(p.variant)

    unique: dict[str, RunResult] = {}  # run hash -> result, for variants sharing a recipe
    pending: list[tuple[_Planned, RunResult]] = []
    for p in planned:
        if p.run_hash in unique:
            continue
        run_dir = out / "runs" / p.run_hash
        result = unique[p.run_hash] = RunResult(p.variant, p.seed, p.run_hash, run_dir, status="cached")
        done = _read_json(run_dir / MARKER_DONE)
        if done and done.get("recipe_hash") == p.run_hash and done.get("eval_hash") == eval_hash:
            result.metrics = done["metrics"]
            result.checkpoint = _resolve_checkpoint(run_dir, done["checkpoint"]) if done.get("checkpoint") else None
        elif only_cached:
            result.status = "missing"
        else:
            pending.append((p, result))

    def failed(p: _Planned, result: RunResult, e: BaseException, trace: str) -> None:
        result.status = "failed"
        result.error = f"{type(e).__name__}: {e}"
        logger.error("grid %s: run %s (variant %s, seed %d) failed:\n%s", spec.name, result.run_dir, p.variant, p.seed, trace)

    if workers > 1 and pending:  # even one run: its thread count, and so its weights, must not depend on what was cached
        check_picklable(train_fn=train_fn, eval_fn=eval_fn)
        # the shared SFT checkpoints first, here, one at a time: two workers must not train the same one
        jobs, queued = [], []
        for p, r in pending:
            try:
                init = _init_checkpoint(p, r.run_dir, sft)
            except Exception as e:  # noqa: BLE001 - as a failed run below
                failed(p, r, e, traceback.format_exc())
                if on_error == "raise":
                    raise
                continue
            jobs.append((_run_one, (p, r, init, train_fn, eval_fn, eval_hash, variants_of[p.run_hash]), r.run_dir / WORKER_LOG))
            queued.append((p, r))
        threads = threads_per_worker(workers)
        logger.info("grid %s: %d runs on %d workers of %d thread(s)", spec.name, len(jobs), workers, threads)
        outcomes = run_in_workers(jobs, workers, threads, stop_on_error=on_error == "raise")
        for (p, result), outcome in zip(queued, outcomes):
            if isinstance(outcome, BaseException):
                failed(p, result, outcome, "".join(traceback.format_exception(outcome)))
            else:
                unique[p.run_hash] = outcome
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        first = next((e for e in errors if not isinstance(e, CancelledError)), errors[0] if errors else None)
        if first is not None and on_error == "raise":
            raise first
    else:
        for p, result in pending:
            try:
                _run_one(p, result, _init_checkpoint(p, result.run_dir, sft), train_fn, eval_fn, eval_hash, variants_of[p.run_hash])
            except Exception as e:  # noqa: BLE001 - recorded, then re-raised unless on_error="continue"
                failed(p, result, e, traceback.format_exc())
                if on_error == "raise":
                    raise

    results = []
    for p in planned:  # the first variant of a run holds its result; others that share the run get a copy
        r = unique[p.run_hash]
        results.append(r if (r.variant, r.seed) == (p.variant, p.seed) else dataclasses.replace(r, variant=p.variant, seed=p.seed))

    grid = GridResults(out, results, sft=dict(sft.paths))
    if not only_cached:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".results.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in grid.rows()), encoding="utf-8")
        os.replace(tmp, out / "results.jsonl")
    counts = {s: sum(r.status == s for r in results) for s in ("cached", "trained", "evaluated", "failed", "missing")}
    logger.info("grid %s in %s: %s", spec.name, out, ", ".join(f"{v} {k}" for k, v in counts.items() if v))
    return grid


def _init_checkpoint(p: _Planned, run_dir: Path, sft: _SFTCache) -> Path | None:
    """The SFT checkpoint a run starts from, trained here if needed; None when the run's training is already done."""
    return None if _trained_checkpoint(run_dir, p.run_hash) else sft.get(p.sft_format)


def _run_one(
    p: _Planned,
    result: RunResult,
    init: Path | None,
    train_fn: TrainFn,
    eval_fn: EvalFn,
    eval_hash: str,
    variants: Sequence[str],
) -> RunResult:
    """Train (from ``init``, unless ``checkpoint.json`` records it done) and evaluate one run; ``result`` filled in."""
    run_dir = result.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = _trained_checkpoint(run_dir, p.run_hash)
    if checkpoint is None:
        recipe = p.recipe.replace(init_from=str(init), output_dir=str(run_dir / "train"))
        recipe.save(run_dir / RECIPE_FILE)
        logger.info("grid: training %s (variant %s, seed %d)", run_dir, p.variant, p.seed)
        checkpoint = Path(train_fn(recipe))
        _write_json_atomic(run_dir / MARKER_TRAINED, {"recipe_hash": p.run_hash, "checkpoint": _store_checkpoint(run_dir, checkpoint)})
        result.status = "trained"
    else:
        recipe = p.recipe.replace(output_dir=str(run_dir / "train"))
        result.status = "evaluated"
    metrics = dict(eval_fn(checkpoint, recipe, run_dir / "eval"))
    tube_metrics(metrics)  # fail here, before the run is marked done, if the metrics are malformed
    _write_json_atomic(
        run_dir / MARKER_DONE,
        {"recipe_hash": p.run_hash, "eval_hash": eval_hash, "variants": list(variants), "seed": p.seed,
         "checkpoint": _store_checkpoint(run_dir, checkpoint), "metrics": metrics},
    )
    result.metrics = metrics
    result.checkpoint = checkpoint
    return result


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Tidy rows from a grid's ``results.jsonl`` (or the grid folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run stvg_lab.analysis.grid.run_grid first")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

