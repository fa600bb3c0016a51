"""The main job (``make demo`` / ``stvg-lab demo``): the whole STVG-o1 recipe at CPU scale.

    stvg-lab demo                       # ~15 min on 2 cores (the grid's two GRPO runs side by side); report in runs/demo/report.md
    stvg-lab demo --from-scratch        # also trains SFT (+~13 min) from a fresh stand-in instead of the shipped checkpoint
    stvg-lab demo --quick               # a smoke run in about a minute (tests use it)

Steps, each cached so a re-run only does what is missing:

1. synthetic data (``data/synthetic``; generated when missing);
2. the SFT'd CPU stand-in: the checkpoint shipped in the package (``stvg_lab.train.shipped``: the
   reader stages of ``bench/curriculum.py``, then the ``tiny_cpu`` SFT three times, ``tiny_cpu_polish``
   three times, one long ``tiny_cpu_ground`` stage, on this benchmark, and a ``tiny_cpu_clips`` stage on four
   times its train clips; checked against its manifest), or with ``from_scratch`` the ``tiny_cpu`` SFT of a fresh stand-in
   here (no reader stages: it learns the format and the sentence's prior, not the frames);
3. GRPO (``tiny_cpu_grpo``) from the SFT checkpoint, as the ``full`` run of a reduced ablation grid
   (``stvg_lab.analysis.grid``: full and no-think-reward, here one seed), the runs side by side in worker
   processes that share the CPU threads (``grid_workers``; one per run, at most one per CPU);
4. evaluation on the test split with the same evaluator for the untrained model, SFT, every
   GRPO run and the trivial baselines (``stvg_lab.baselines``);
5. the object-scale analysis (paper Fig. 4) of the GRPO model;
6. ``report.md``: the tables and the figure, each difference between arms with its paired
   bootstrap interval over the test clips (``stvg_lab.analysis.paired``), the recipe and the wall
   time of each step.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    out_dir: Path = Path("runs/demo")
    data_dir: Path = Path("data/synthetic")
    seed: int = 0
    quick: bool = False  # tiny sizes: a smoke run of every step
    n_train: int = 3000
    n_val: int = 50
    n_test: int = 100
    recipe: str = "tiny_cpu"  # SFT (and the untrained stand-in's architecture)
    grpo_recipe: str = "tiny_cpu_grpo"
    from_scratch: bool = False  # train SFT here instead of using the shipped checkpoint
    sft_steps: int | None = None  # None: the recipe's
    grpo_steps: int | None = None  # None: the GRPO recipe's
    grid_variants: list[str] = field(default_factory=lambda: ["full", "no_think_reward"])
    grid_seeds: list[int] = field(default_factory=lambda: [0])
    # grid runs side by side, the CPUs shared out (stvg_lab.analysis.workers); None: one per run, at most one per CPU
    grid_workers: int | None = None
    n_eval: int = 100  # test samples scored for every model (the same ones)
    n_reliance: int = 32  # val clips of the video-reliance control

    def __post_init__(self) -> None:
        self.out_dir, self.data_dir = Path(self.out_dir), Path(self.data_dir)
        if self.grid_workers is not None and self.grid_workers < 1:
            raise ValueError(f"grid_workers must be at least 1 (or None: one per grid run), got {self.grid_workers}")
        if self.quick:
            # every step runs, on sizes that finish in about a minute
            self.n_train, self.n_val, self.n_test = 8, 2, 4
            self.sft_steps, self.grpo_steps, self.n_eval, self.n_reliance = 2, 2, 2, 2
            self.from_scratch = True  # the smoke run exercises SFT too


def _timed(timings: dict[str, float], name: str):
    class _Timer:
        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = time.perf_counter() - self.t0
            logger.info("demo: %s took %.1f s", name, timings[name])

    return _Timer()


def _ensure_data(cfg: DemoConfig) -> None:
    from stvg_lab.data.synth import ensure_synthetic, read_manifest

    if (cfg.data_dir / "dataset.json").is_file():
        counts = read_manifest(cfg.data_dir).get("counts", {})
        want = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}
        if counts != want:
            raise ValueError(
                f"{cfg.data_dir} holds a synthetic dataset with split sizes {counts}, not {want}; "
                "pass another --data folder or delete it"
            )
        return
    ensure_synthetic(cfg.data_dir, cfg.n_train, cfg.n_val, cfg.n_test, seed=cfg.seed, progress=True)


def _recipe(cfg: DemoConfig, name: str | None = None, **overrides: Any):
    from stvg_lab.train.recipe import load_recipe

    return load_recipe(name or cfg.recipe, data=str(cfg.data_dir), seed=cfg.seed, eval_split="test", **overrides)


def _sft(cfg: DemoConfig) -> tuple[Path, Path]:
    """``(sft checkpoint, untrained stand-in)``: shipped, or trained here with ``from_scratch``."""
    from stvg_lab.train.sft import resolve_model_path, run_sft

    if not cfg.from_scratch:
        from stvg_lab.train.shipped import check_compatible, shipped_checkpoint

        final = shipped_checkpoint()
        check_compatible(final, cfg.data_dir)
        # the untrained row: the stand-in the shipped one's curriculum started from (same tiny_model and seed)
        base = Path(resolve_model_path(_recipe(cfg, output_dir=str(cfg.out_dir / "sft")), cfg.out_dir / "sft"))
        return final, base
    run_dir = cfg.out_dir / "sft"
    final = run_dir / "final"
    if final.is_dir():
        return final, run_dir / "base"
    overrides: dict[str, Any] = {"output_dir": str(run_dir)}
    if cfg.sft_steps is not None:
        overrides["max_steps"] = cfg.sft_steps
    return run_sft(_recipe(cfg, **overrides), resume=run_dir.is_dir()), run_dir / "base"


def _grid(cfg: DemoConfig, sft_final: Path):
    from stvg_lab.analysis.grid import GridSpec, run_grid

    spec = GridSpec(
        variants=list(cfg.grid_variants),
        seeds=list(cfg.grid_seeds),
        base_recipe=_recipe(cfg, cfg.grpo_recipe, **({} if cfg.grpo_steps is None else {"max_steps": cfg.grpo_steps, "save_steps": cfg.grpo_steps})),
        sft_checkpoints={_recipe(cfg).answer_format: str(sft_final)},
        eval_kwargs={"progress": False},
        max_eval_samples=cfg.n_eval,
        name="demo",
    )
    return run_grid(spec, cfg.out_dir / "grid", workers=_grid_workers(cfg))


def _workers_phrase(cfg: DemoConfig) -> str:
    from stvg_lab.analysis.workers import threads_per_worker

    workers = _grid_workers(cfg)
    if workers == 1:
        return "one after the other in this process"
    return f"side by side in {workers} worker processes of {threads_per_worker(workers)} torch thread(s) each"


def _grid_workers(cfg: DemoConfig) -> int:
    if cfg.grid_workers is not None:
        return cfg.grid_workers
    return max(1, min(len(cfg.grid_variants) * len(cfg.grid_seeds), os.cpu_count() or 1))


def _evaluate(cfg: DemoConfig, checkpoint: Path, name: str, test, train) -> Path:
    """Evaluate into ``eval/<name>``; answers of other weights there are asked again (``answers_from.json``)."""
    from stvg_lab.evaluate import evaluate_model

    out = cfg.out_dir / "eval" / name
    evaluate_model(checkpoint, test, out, _recipe(cfg).answer_format, train_samples=train, progress=False)
    return out


def _reliance(cfg: DemoConfig, checkpoints: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per model: the whole answer's own/swapped loss and gap, and ``segments`` (span digits, first boxes: segment_gaps)."""
    from stvg_lab.analysis.reliance import grounding_rows, segment_gaps, video_reliance
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.model import load_model

    val = load_synthetic(cfg.data_dir, "val")[: cfg.n_reliance]
    fmt = _recipe(cfg).answer_format
    rows = grounding_rows(val, fmt)
    out = {}
    for name, ckpt in checkpoints.items():
        model, processor = load_model(ckpt)
        out[name] = {**video_reliance(model, val, fmt, processor=processor),
                     "segments": segment_gaps(model, processor, rows, names=[s.id for s in val])}
    return out


def _reliance_markdown(reliance: dict[str, dict[str, Any]]) -> str:
    from stvg_lab.analysis.tables import render_table

    segments = ("time", "think box 1", "pred box 1")  # where a reader shows first (bench/LEARNING.md round 5)

    def seg(r: dict[str, Any], name: str) -> str:
        return f"{r['segments'][name]['gap']:+.3f}" if name in r["segments"] else "–"

    rows = [[name, f"{r['own']:.4f}", f"{r['swapped']:.4f}", f"{r['gap']:+.4f}", *(seg(r, k) for k in segments)]
            for name, r in reliance.items()]
    return render_table(["model", "own video", "swapped video", "gap", "gap: span digits", "gap: think box 1", "gap: pred box 1"], rows)


def _swap_markdown(answers: dict[str, list], test) -> str:
    """Own vs next clip's greedy answer per model (stvg_lab.analysis.swap), %; a model with < 2 parsed answers says so."""
    from stvg_lab.analysis.swap import swap_control
    from stvg_lab.analysis.tables import render_table

    def pct(v: float) -> str:
        return f"{100 * v:.1f}"

    rows = []
    for name, predictions in answers.items():
        try:
            w = swap_control(predictions, test)
        except ValueError as e:  # e.g. the quick demo's SFT parses nothing: nothing to swap
            rows.append([name, *["–"] * 11, str(e)])
            continue
        think = w.get("think") or {}
        rows.append([name, pct(w["span"]["own"]), pct(w["span"]["swapped"]),
                     *(pct(think[k]) if think else "–" for k in ("own_centre", "swapped_centre", "constant_centre")),
                     str(think.get("distinct", "–")),
                     *(pct(w["pred"][k]) for k in ("own_centre", "swapped_centre", "own_iou", "swapped_iou", "constant_iou")),
                     str(w["n"])])
    return render_table(["model", "span tIoU: own", "swapped", "think box hits the centre: own", "swapped", "one constant box",
                         "distinct think boxes", "pred box hits the centre: own", "swapped", "pred box IoU: own", "swapped",
                         "one constant box", "parsed answers"], rows)


def _counts_markdown(answers: dict[str, list]) -> str:
    """Greedy box lists against their own span per model (stvg_lab.analysis.counts), %."""
    from stvg_lab.analysis.counts import box_counts
    from stvg_lab.analysis.tables import render_table

    rows = []
    for name, predictions in answers.items():
        c = box_counts(predictions)
        pred = c["pred"] or {}
        rows.append([name, f"{100 * c['parsed']:.0f}", f"{100 * c['consistent']:.0f}",
                     *(f"{100 * pred[k]:.0f}" if pred else "–" for k in ("short", "exact", "long")),
                     f"{pred['extra']:+.2f}" if pred else "–"])
    return render_table(["model", "parsed", "consistent (Eq. 4)", "pred list short", "exact", "long", "boxes − span frames"], rows)


def _which_object_markdown(answers: dict[str, list], test, data_dir: Path) -> str:
    """Which object each model's greedy pred boxes land on (stvg_lab.analysis.which_object), % of span frames."""
    from stvg_lab.analysis.tables import render_table
    from stvg_lab.analysis.which_object import outcome_table, which_object_rows

    def cells(t: dict, group: object, outcomes: tuple[str, ...]) -> list[str]:
        m = t.get(group)
        return [f"{m['n']} ({m['clips']})", *(f"{100 * m[o]:.0f}" for o in outcomes)] if m else ["0 (0)", *("–" for _ in outcomes)]

    rows = []
    for name, predictions in answers.items():
        frames = which_object_rows(predictions, test, data_dir)
        in_view = outcome_table(frames, lambda r: r["differ"] is not None)
        same_size = outcome_table([r for r in frames if r["differ"] is not None], lambda r: "size" not in r["differ"])
        rows.append([name, *cells(in_view, True, ("target", "distractor", "none", "missing")),
                     *cells(same_size, True, ("target", "distractor")), *cells(in_view, False, ("target", "none", "missing"))])
    return render_table(["model", "frames (clips) with a distractor in view", "on the target", "on a distractor", "on no object", "no box",
                         "of them, same-size distractor", "on the target", "on the distractor",
                         "no distractor in view", "on the target", "on no object", "no box"], rows)


def _scale_markdown(analysis) -> str:
    from stvg_lab.analysis.tables import render_table

    def pct(v: float) -> str:
        return "–" if v != v else f"{100 * v:.1f}"  # NaN (an empty bin) shows as a dash

    rows = [
        [f"{r.lo:g}–{r.hi:g}", str(int(r.n)), pct(r.think_vIoU), pct(r.pred_vIoU), pct(r.delta)]
        for r in analysis.itertuples()
    ]
    return render_table(["area ratio", "n", "think vIoU", "pred vIoU", "Δ"], rows)


def _paired_markdown(cfg: DemoConfig, grid, sft_eval: Path) -> str:
    """SFT + GRPO against SFT, and ``full`` against each other variant, on the same clips (every grid seed)."""
    from stvg_lab.analysis.paired import compare_evaluations, difference_table, variant_differences

    metrics = ("m_tIoU", "m_vIoU", "vIoU@0.3", "R_total")
    full = [grid.run("full", s).eval_dir for s in cfg.grid_seeds]
    named = {"SFT + GRPO - SFT": compare_evaluations(full, [sft_eval], metrics)}
    return difference_table(named | variant_differences(grid, "full", metrics))


def _made_on(run_dir: Path) -> str:
    """The environment ``run_dir``'s training started in, in a few words, or why it is unknown."""
    from stvg_lab.train.runs import environment_label, read_environment

    envs = read_environment(run_dir)
    return environment_label(envs[0]) if envs else f"not recorded ({run_dir} predates environment.jsonl)"


def run_demo(cfg: DemoConfig) -> Path:
    """Run every step of the recipe (module docstring) and return the path of ``report.md``."""
    from stvg_lab.analysis.scale import plot_scale, read_per_sample, scale_analysis
    from stvg_lab.analysis.tables import ablation_table, heldout_reward_table, results_table
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.infer import read_predictions

    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with _timed(timings, "data"):
        _ensure_data(cfg)
    train = load_synthetic(cfg.data_dir, "train")
    test = load_synthetic(cfg.data_dir, "test")[: cfg.n_eval]
    with _timed(timings, "sft"):
        sft_final, base = _sft(cfg)
    with _timed(timings, "grpo grid"):
        grid = _grid(cfg, sft_final)
    with _timed(timings, "evaluation"):
        untrained = _evaluate(cfg, base, "untrained", test, train)
        sft_eval = _evaluate(cfg, sft_final, "sft", test, train)
    full = grid.run("full", cfg.grid_seeds[0])
    grpo_run = full.eval_dir
    with _timed(timings, "video reliance"):
        reliance = _reliance(cfg, {"SFT": sft_final, "SFT + GRPO": Path(full.checkpoint)})
    with _timed(timings, "object scale"):
        analysis = scale_analysis(read_per_sample(grpo_run))
        fig = plot_scale(analysis)
        fig.savefig(cfg.out_dir / "object_scale.png", dpi=120, bbox_inches="tight")

    rows = {"untrained stand-in": untrained, "SFT": sft_eval, "SFT + GRPO": grpo_run}
    # greedy test answers, read once for the swap and count sections
    answers = {name: read_predictions(rows[name] / "predictions.jsonl") for name in ("SFT", "SFT + GRPO")}
    report = cfg.out_dir / "report.md"
    text = "\n".join(
        [
            "# stvg-lab demo: STVG-o1 at CPU scale",
            "",
            f"Synthetic benchmark `{cfg.data_dir}` ({cfg.n_train}/{cfg.n_val}/{cfg.n_test} clips), "
            f"CPU stand-in model, recipe `{cfg.recipe}`; every model scored on the same "
            f"{len(test)} test samples by `stvg_lab.metrics.evaluate` (values in %).",
            "",
            "## Untrained vs SFT vs SFT + GRPO",
            "",
            "Each model's `pred span + mean box` row keeps its own pred spans and puts the mean training box in every "
            "frame: the model's boxes ground by as much as its pred m_vIoU exceeds that row's.",
            "",
            results_table(rows),
            "",
            "### The reward of these answers (`stvg_lab.evaluate.answer_rewards`)",
            "",
            "GRPO raises Eq. 10 on the prompts it samples; here is Eq. 10 of each model's greedy answers to the test clips, "
            "term by term (the paper's rewards, in reward units). A rise that sits in R_c, the box count fitting the span, "
            "leaves the metrics where they were; the pred list's R_spa (Eq. 7) is the term that follows m_vIoU.",
            "",
            heldout_reward_table(rows),
            "",
            "## Is each difference more than the test clips' noise? (`stvg_lab.analysis.paired`)",
            "",
            "Arm a minus arm b with a 95 % paired bootstrap interval: the same clips are drawn for both arms, and each "
            "arm's training seeds are drawn too (one seed per arm tests the clips only, not the training run). "
            "\"Draws with a <= b\" is the share of draws in which a does not beat b; an interval that holds 0 is no "
            "finding. Seeds must be independent to count (bench/LEARNING.md round 20: two SFT \"seeds\" that shared their "
            "data orders agreed on a +3 m_vIoU gain that independent orders did not repeat). `R_total` is Eq. 10, the "
            "reward GRPO maximises, of the greedy answers to these held-out clips (the paper's rewards, λk = 0.5, in "
            "reward units; `stvg_lab.evaluate.answer_rewards`): whether what GRPO raised on its training prompts rose "
            "on new clips too, beside whether the metrics did.",
            "",
            _paired_markdown(cfg, grid, sft_eval),
            "",
            "## Does the model read the video? (`stvg_lab.analysis.reliance`)",
            "",
            f"Answer loss of the SFT target on {cfg.n_reliance} val clips with each clip's own frames and with the next "
            "clip's frames (nats per token): the whole answer, then only the digit tokens of the span, of the first "
            "think box and of the first pred box. A gap near 0 means those tokens do not depend on the pixels: any "
            "gain over the baselines then comes from the sentence (e.g. \"moves up\" gives the boxes' direction).",
            "",
            _reliance_markdown(reliance),
            "",
            "## Do the answers carry their own clip? (`stvg_lab.analysis.swap`)",
            "",
            "Each model's greedy test answers scored against their own clip's ground truth and, as a control, the next "
            "clip's answer scored against the same ground truth. A prior (the same span or box whatever the clip) scores "
            "alike both ways; \"one constant box\" scores the model's most frequent think (or pred) box on every frame; "
            "box IoU is the mean over the frames of the spans' intersection, and its three columns agree for a box that "
            "is a prior (bench/LEARNING.md round 7: GRPO on the stand-in collapses the think box to one central box; "
            "round 12: the pred box).",
            "",
            _swap_markdown(answers, test),
            "",
            "## Do the box lists fit their span? (`stvg_lab.analysis.counts`)",
            "",
            "Eq. 4 on the greedy test answers: the share of all answers whose think and pred lists hold one box per frame "
            "of their span, and how the pred list misses (of parsed answers). A box missing inside the span costs spatial "
            "reward, one after it only the consistency reward, so GRPO tends to write too many (bench/LEARNING.md round 8; "
            "reward variant `count_penalty`).",
            "",
            _counts_markdown(answers),
            "",
            "## Which object do the boxes land on? (`stvg_lab.analysis.which_object`)",
            "",
            "Every object of each test clip drawn again from the benchmark's manifest; each greedy pred box of a "
            "ground-truth span frame goes to the visible object it overlaps most (or to none, or the answer has no box "
            "there). \"Same-size distractor\": the most confusable distractor in view has the target's size, so only "
            "the colour, shape or motion word tells them apart (bench/LEARNING.md rounds 15-16: the stand-in reads the size "
            "word alone). % of the frames counted in the column before; a clip's frames share one answer, so few clips "
            "make a share noisy.",
            "",
            _which_object_markdown(answers, test, cfg.data_dir),
            "",
            "## Reduced ablation grid (think reward, Tab. 6)",
            "",
            ablation_table(grid, "tab6"),
            "",
            "## Object scale (cf. paper Fig. 4), SFT + GRPO",
            "",
            "![object scale](object_scale.png)",
            "",
            _scale_markdown(analysis),
            "",
            "## Wall time (s)",
            "",
            "| step | seconds |",
            "|---|---:|",
            *[f"| {k} | {v:.1f} |" for k, v in timings.items()],
            "",
            f"The grid's runs trained {_workers_phrase(cfg)} (`--grid-workers`; the weights may depend on the thread count).",
            "",
            f"Configuration: `{json.dumps({k: str(v) for k, v in asdict(cfg).items()})}`",
            "",
            f"Made on (the GRPO run's `environment.jsonl`; the same recipe on other CPU kernels or versions gives other "
            f"digits, bench/LEARNING.md round 9): {_made_on(Path(full.checkpoint).parent)}",
            "",
        ]
    )
    report.write_text(text)
    return report
