"""GRPO settings from one SFT checkpoint (the shipped stand-in by default), over seeds, on the test split.

    OMP_NUM_THREADS=1 .venv/bin/python bench/grpo_sweep.py --name base --seed 0                      # tiny_cpu_grpo as it is (300 steps at t 0.3 since session 25), ~13 min on one core
    OMP_NUM_THREADS=1 .venv/bin/python bench/grpo_sweep.py --name lr3e-5 --set learning_rate=3e-5 --seed 0
    OMP_NUM_THREADS=1 .venv/bin/python bench/grpo_sweep.py --name sft_more --sft-steps 950 --set learning_rate=1e-4 --seed 0  # the control: as long, more SFT
    .venv/bin/python bench/grpo_sweep.py --table                                                    # every variant run so far

A variant is a name and its ``--set`` overrides of ``tiny_cpu_grpo`` (bench/LEARNING.md round 7 has
the ones measured and why). One run: ``stvg_lab.train.grpo.run_grpo`` from ``--init`` into
``<root>/<name>/seed<k>/run``, then the test metrics of its ``final`` (``evaluate_model`` on
``--n-test`` clips, greedy, as the demo scores, and with one answer per clip sampled at the run's
rollout temperature, what GRPO optimises), the swap control of its greedy answers
(``stvg_lab.analysis.swap``: own clip vs the next clip's answer, and one constant think box), the
reward terms' first -> last fifth of the logged steps, and where the greedy spans moved against the
start checkpoint's (which is scored once, into ``<root>/start``; one ``--init`` per root, so runs from
another checkpoint need their own ``--root``). Re-running a finished seed trains
nothing: it re-reads the run and rescores only what its cache lacks. A variant's overrides are recorded with its first seed; a later seed
with other overrides is an error naming both, so a table never mixes two settings under one name.
SFT controls (``--sft-steps``) run before session 22 with seed k >= 1 trained on seed 0's data orders shifted
by k epochs (transformers' ``data_seed + epoch``); since then ``sft_config`` spaces the data seeds
(bench/LEARNING.md round 20). A finished seed is re-read, not re-run, so such a table keeps the old orders.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

METRICS = ("m_tIoU", "m_vIoU", "vIoU@0.3")
# TRL's log columns, named by our reward functions (stvg_lab.reward_variants.reward_setup), shown in the table
TERMS = {"format": "format_reward", "consistency": "consistency_reward", "temporal": "temporal_reward", "spatial": "spatial_reward",
         "think": "think_reward"}


def span_stats(per_sample: list[dict]) -> dict[str, float]:
    """Where the greedy pred spans lie against the ground truth: mean length, start and end error, in frames.

    ``per_sample``: ``evaluate_model``'s rows (``gt_span``, ``pred_span`` ``[s, e]`` inclusive, or
    None when the answer did not parse). Signed errors: a negative ``start_err`` starts early.
    """
    rows = [r for r in per_sample if r.get("pred_span")]
    if not rows:
        return {"n": 0}
    n = len(rows)
    mean = lambda f: sum(f(r) for r in rows) / n  # noqa: E731
    return {"n": n,
            "pred_len": mean(lambda r: r["pred_span"][1] - r["pred_span"][0] + 1),
            "gt_len": mean(lambda r: r["gt_span"][1] - r["gt_span"][0] + 1),
            "start_err": mean(lambda r: r["pred_span"][0] - r["gt_span"][0]),
            "end_err": mean(lambda r: r["pred_span"][1] - r["gt_span"][1])}


def spans_changed(start: list[dict], run: list[dict]) -> float:
    """Share of clips whose greedy pred span differs from the start checkpoint's (same clips, by id)."""
    before = {r["id"]: r.get("pred_span") for r in start}
    common = [r for r in run if r["id"] in before]
    if not common:
        raise ValueError("the run and the start checkpoint share no evaluated clip")
    return sum(r.get("pred_span") != before[r["id"]] for r in common) / len(common)


def span_control(metrics: dict) -> dict[str, float]:
    """The greedy pred spans with the mean training box (``metrics.json``'s control), METRICS only."""
    from stvg_lab.evaluate import OWN_SPAN_CONTROL

    return {k: metrics["controls"][OWN_SPAN_CONTROL][k] for k in METRICS}


def score(checkpoint: Path, out: Path, data: Path, n_test: int, temperature: float | None = None) -> dict:
    """Test metrics of ``checkpoint`` (pred and think tubes, parse rate, span stats), cached in ``out/score.json``.

    Greedy, as the demo and the paper score; with ``temperature``, one answer sampled per clip at
    that temperature (torch seed 0), i.e. what GRPO's rollouts are drawn from.
    """
    from stvg_lab.analysis.counts import box_counts
    from stvg_lab.analysis.swap import swap_control
    from stvg_lab.checkpoints import written_after
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.evaluate import score_predictions
    from stvg_lab.train.recipe import trained_answer_format

    fmt = trained_answer_format(checkpoint, "compact")  # the prompt and answers it was trained on
    done = out / "score.json"
    if written_after(done, checkpoint):
        cached = json.loads(done.read_text(encoding="utf-8"))
        if cached["n_test"] == n_test:
            if not {"swap", "counts", "span_control"} <= set(cached):  # scored before these existed: they need only the saved answers
                from stvg_lab.infer import read_predictions

                saved = read_predictions(out / "eval" / "predictions.jsonl")
                test = load_synthetic(data, "test")[:n_test]
                if "swap" not in cached:
                    cached["swap"] = swap_control(saved, test)
                cached["counts"] = box_counts(saved)
                cached["span_control"] = span_control(score_predictions(saved, test, fmt, train_samples=load_synthetic(data, "train")).metrics)
                done.write_text(json.dumps(cached, indent=1), encoding="utf-8")
            return cached
    import torch

    from stvg_lab.evaluate import evaluate_model

    train, test = load_synthetic(data, "train"), load_synthetic(data, "test")[:n_test]
    sampling = {"do_sample": True, "temperature": temperature} if temperature else {}
    torch.manual_seed(0)
    report = evaluate_model(checkpoint, test, out / "eval", fmt, train_samples=train, progress=False, resume=False, **sampling)
    m = report.metrics
    result = {"n_test": n_test, "temperature": temperature, "parse_rate": 1 - m["parse_failure_rate"],
              **{f"{tube}_{k}": m[tube][k] for tube in ("pred", "think") if m.get(tube) for k in METRICS},
              "spans": span_stats(report.per_sample), "swap": swap_control(report.predictions, test), "counts": box_counts(report.predictions),
              "baselines": {b: {k: v[k] for k in METRICS} for b, v in (m.get("baselines") or {}).items()},
              "span_control": span_control(m)}
    done.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def per_sample(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "eval" / "per_sample.jsonl").read_text(encoding="utf-8").splitlines()]


def claim_start(root: Path, init: Path) -> None:
    """Record which checkpoint ``<root>/start`` scores; a root is one start, so another is an error.

    The start's score is cached by file time only, so a second ``--init`` under the same root would
    silently replace it (or be read as it) and every table row would compare against the wrong start.
    """
    record = root / "start" / "init.json"
    if record.is_file():
        had = json.loads(record.read_text(encoding="utf-8"))["init"]
        if had != str(init):
            raise SystemExit(f"{record}: this root's start is {had}, not {init}; give runs from another checkpoint their own --root")
    else:
        record.write_text(json.dumps({"init": str(init)}), encoding="utf-8")


def run_variant(args: argparse.Namespace) -> dict:
    from stvg_lab.data.synth import ensure_synthetic
    from stvg_lab.train.grpo import run_grpo
    from stvg_lab.train.logging import metric_change, read_log, reward_change
    from stvg_lab.train.recipe import load_recipe, parse_overrides
    from stvg_lab.train.shipped import check_compatible, shipped_checkpoint

    data, root = Path(args.data), Path(args.root)
    init = Path(args.init) if args.init else shipped_checkpoint()
    ensure_synthetic(data, progress=False)
    if not args.init:
        check_compatible(init, data)
    overrides = parse_overrides(args.set)
    variant = root / args.name
    variant.mkdir(parents=True, exist_ok=True)
    record = variant / "variant.json"
    want = {"set": args.set, "init": str(init)} | ({"sft_steps": args.sft_steps} if args.sft_steps else {})
    if record.is_file() and json.loads(record.read_text(encoding="utf-8")) != want:
        raise SystemExit(f"{record}: variant {args.name!r} was run with {record.read_text(encoding='utf-8').strip()}, "
                         f"not {json.dumps(want)}; pick another --name")
    record.write_text(json.dumps(want), encoding="utf-8")
    out = variant / f"seed{args.seed}"
    if not (out / "run" / "final").is_dir():
        if args.sft_steps:
            sft_control(init, data, args.seed, out / "run", args.sft_steps, overrides)
        else:
            run_grpo(load_recipe("tiny_cpu_grpo", data=str(data), seed=args.seed, output_dir=str(out / "run"), init_from=str(init), **overrides))
    (root / "start").mkdir(exist_ok=True)
    with open(root / "start" / ".lock", "w") as lock:  # runs side by side score the start checkpoint once
        fcntl.flock(lock, fcntl.LOCK_EX)
        claim_start(root, init)
        start = score(init, root / "start", data, args.n_test)
        t = load_recipe(out / "run" / "recipe.yaml").temperature
        start_sampled = score(init, root / "start" / f"sampled_t{t:g}", data, args.n_test, temperature=t)
    result = score(out / "run" / "final", out, data, args.n_test)
    result["sampled"] = score(out / "run" / "final", out / "sampled", data, args.n_test, temperature=t)
    start["sampled"] = start_sampled
    log = read_log(out / "run")
    grpo_s = next((r["train_runtime"] for r in reversed(log) if "train_runtime" in r), float("nan"))  # TRL's, kept on a re-score
    terms: dict = {}
    logged = {k for r in log for k in r} if not args.sft_steps else set()  # an SFT control logs no rewards
    for term, fn in TERMS.items():
        # a variant's reward is named with a suffix (spatial_reward_extra_floor, ...); the plain name first
        column = next((c for c in sorted(logged, key=len) if c.startswith(f"rewards/{fn}") and c.endswith("/mean")), None)
        if column:  # else a variant without this reward
            terms[term] = metric_change(log, column)
    for key in ("kl", "completions/mean_length", "entropy", "greedy/frac_beaten", "greedy/minus_samples"):  # greedy/*: greedy_in_group runs only
        try:
            terms[key] = metric_change(log, key)
        except ValueError:
            pass
    result.update(name=args.name, seed=args.seed, set=args.set, sft_steps=args.sft_steps, grpo_s=round(grpo_s), start=start,
                  reward=None if args.sft_steps else reward_change(log), terms=terms, spans_changed=spans_changed(per_sample(root / "start"), per_sample(out)))
    (out / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    return result


def sft_control(init: Path, data: Path, seed: int, out: Path, steps: int, overrides: dict) -> Path:
    """The control for "does GRPO beat its SFT": ``steps`` more SFT steps from ``init`` instead of GRPO.

    The recipe of the SFT that made ``init`` (:func:`sft_recipe_path`) with the model set to ``init``,
    no warm-up, no checkpoint averaging (the stage behind ``init`` may average from a step past
    ``steps``; a GRPO run does not average either), and ``overrides`` (e.g. ``learning_rate``); ``seed``
    orders the data. Pick ``steps`` so that it takes the wall time of one GRPO run (bench/LEARNING.md
    round 9: ~950 steps for 100 GRPO steps).
    """
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.sft import run_sft

    recipe = load_recipe(sft_recipe_path(init), **{"warmup_ratio": 0.0, "average_from_step": None, **overrides, "model": str(init), "data": str(data),
                                                   "seed": seed, "output_dir": str(out), "max_steps": steps})
    return run_sft(recipe)


def sft_recipe_path(init: Path) -> Path:
    """The ``recipe.yaml`` of the last SFT behind checkpoint ``init``.

    An SFT run's recipe starts from ``model`` and keeps ``init_from: base``; a GRPO run's names the SFT
    checkpoint it started from in ``init_from``. So from a GRPO checkpoint, follow ``init_from`` back:
    its own recipe would make "SFT" run with GRPO's batch (16 completions, 4x the SFT's) and schedule.
    """
    from stvg_lab.train.recipe import load_recipe

    path, seen = init / "recipe.yaml", set()
    while (parent := load_recipe(path).init_from) != "base":
        if path in seen or not (Path(parent) / "recipe.yaml").is_file():
            raise SystemExit(f"{path}: init_from={parent!r} is not a checkpoint with a recipe.yaml; cannot find the SFT behind {init}")
        seen.add(path)
        path = Path(parent) / "recipe.yaml"
    return path


def _sampled(start: dict) -> str:
    """The start checkpoint's sampled-answer cells (parsed, m_tIoU, m_vIoU), or dashes when not measured."""
    if "sampled" not in start:
        return " | ".join("–" * 3)
    m = start["sampled"]
    return f"(t {m['temperature']:g}) {100 * m['parse_rate']:.0f} | {100 * m['pred_m_tIoU']:.1f} | {100 * m['pred_m_vIoU']:.1f}"


def table(root: Path) -> str:
    """Markdown: the start checkpoint, then each variant's mean ± sample std over its seeds (test split, %)."""
    from stvg_lab.analysis.tables import format_cell, mean_spread

    results: dict[str, list[dict]] = {}
    paths = sorted(root.glob("*/seed*/result.json"))
    for path in paths:
        r = json.loads(path.read_text(encoding="utf-8"))
        results.setdefault(r["name"], []).append(r)
    if not results:
        raise SystemExit(f"no sweep results under {root}")
    cell = lambda vals, scale=100.0, digits=1: format_cell(*mean_spread(vals)[:2], scale=scale, digits=digits)  # noqa: E731
    cols = ["parsed", *(f"pred {m}" for m in METRICS), "pred spans + mean box: m_vIoU", "think m_vIoU", "sampled: parsed", "sampled: m_tIoU", "sampled: m_vIoU",
            "pred span len", "spans moved",
            "reward first → last", "temporal last", "spatial last", "KL last"]
    # the start row's sampled cells at temperature 1.0 (tiny_cpu_grpo's) when any run sampled there
    starts = [r["start"] for rs in results.values() for r in rs]
    start = next((x for x in starts if x.get("sampled", {}).get("temperature") == 1.0), starts[0])
    lines = [f"{start['n_test']} test clips, %, mean ± sample std over seeds; reward terms: mean of the last fifth of logged steps", "",
             "| variant | seeds | " + " | ".join(cols) + " |", "|---|---|" + "---:|" * len(cols),
             f"| start (SFT) | – | {100 * start['parse_rate']:.0f} | " + " | ".join(f"{100 * start[f'pred_{m}']:.1f}" for m in METRICS)
             + f" | {cell([start['span_control']['m_vIoU']]) if 'span_control' in start else '–'}"
             + f" | {100 * start['think_m_vIoU']:.1f} | {_sampled(start)}"
             + f" | {start['spans']['pred_len']:.2f} | – | – | – | – | – |"]
    for name, rs in results.items():
        rs.sort(key=lambda r: r["seed"])
        term = lambda key: cell([r["terms"][key][1] for r in rs], 1, 2) if all(key in r["terms"] for r in rs) else "–"  # noqa: E731
        cells = [cell([r["parse_rate"] for r in rs], digits=0), *(cell([r[f"pred_{m}"] for r in rs]) for m in METRICS),
                 cell([r["span_control"]["m_vIoU"] for r in rs]) if all("span_control" in r for r in rs) else "–",
                 cell([r["think_m_vIoU"] for r in rs]),
                 *((cell([r["sampled"][k] for r in rs], digits=0 if k == "parse_rate" else 1) if all("sampled" in r for r in rs) else "–")
                   for k in ("parse_rate", "pred_m_tIoU", "pred_m_vIoU")),
                 cell([r["spans"].get("pred_len", 0.0) for r in rs], 1, 2),
                 cell([r["spans_changed"] for r in rs], digits=0),
                 f"{cell([r['reward']['first'] for r in rs], 1, 2)} → {cell([r['reward']['last'] for r in rs], 1, 2)}"
                 if all(r.get("reward") for r in rs) else "–",
                 term("temporal"), term("spatial"), term("kl")]
        steps = rs[0].get("sft_steps")
        sets = " ".join([f"`{s}`" for s in rs[0]["set"]] + ([f"SFT +{steps} steps, no GRPO"] if steps else [])) or "tiny_cpu_grpo"
        lines.append(f"| {name} ({sets}) | {','.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    for base, b in start["baselines"].items():
        lines.append(f"| baseline: {base} | – | – | " + " | ".join(f"{100 * b[m]:.1f}" for m in METRICS) + " |" + " – |" * (len(cols) - 1 - len(METRICS)))
    return "\n".join(lines + swap_table(start, results) + counts_table(start, results) + tag_table(root, results)
                     + ["", made_on([p.parent / "run" for p in paths])])


def made_on(runs: list[Path]) -> str:
    """One line: the environments the runs' trainings started in (``environment.jsonl``), with counts.

    Why: a run repeats to the bit only in the same environment and on the same data (bench/LEARNING.md
    round 10), so a table says where its rows were made.
    """
    from collections import Counter

    from stvg_lab.train.runs import environment_label, read_environment

    counts = Counter(environment_label(envs[0]) if (envs := read_environment(r)) else "not recorded" for r in runs)
    return "Made on: " + "; ".join(f"{k} ({n} run{'s' * (n != 1)})" for k, n in counts.most_common()) + "."


def swap_table(start: dict, results: dict[str, list[dict]]) -> list[str]:
    """Markdown lines: what the greedy answers carry of their own clip (stvg_lab.analysis.swap), start and variants."""
    from stvg_lab.analysis.tables import format_cell, mean_spread

    if "swap" not in start or not all("swap" in r for rs in results.values() for r in rs):
        return ["", "(no swap control in some results: run each variant again to add it; no training is redone)"]
    cell = lambda vals: format_cell(*mean_spread(vals)[:2], scale=100.0, digits=1)  # noqa: E731
    cols = ["span tIoU own", "swapped", "think box: centre hit own", "swapped", "one constant box", "distinct boxes",
            "pred box: centre hit own", "swapped", "pred box: IoU own", "swapped", "one constant box"]
    lines = ["", "Own vs next clip's greedy answer against each clip's ground truth (`stvg_lab.analysis.swap`), %; "
             "a prior scores alike both ways:", "", "| variant | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, swaps in [("start (SFT)", [start["swap"]]), *((n, [r["swap"] for r in rs]) for n, rs in results.items())]:
        cells = [cell([w["span"]["own"] for w in swaps]), cell([w["span"]["swapped"] for w in swaps])]
        cells += [cell([w["think"][k] for w in swaps]) for k in ("own_centre", "swapped_centre", "constant_centre")]
        cells.append(format_cell(*mean_spread([w["think"]["distinct"] for w in swaps])[:2], scale=1.0, digits=0))
        # mean IoU per frame of the spans' intersection: own ≈ swapped ≈ constant means the boxes are a prior
        cells += [cell([w["pred"][k] for w in swaps]) for k in ("own_centre", "swapped_centre", "own_iou", "swapped_iou", "constant_iou")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def tag_table(root: Path, results: dict[str, list[dict]], tag: str = "n_distractors") -> list[str]:
    """Markdown lines: pred m_vIoU per value of ``tag`` (stvg_lab.analysis.tags), start and variants, from each
    run's ``eval/per_sample.jsonl``.

    Why: on spread a long SFT doubled m_vIoU on one-object clips and raised it by a third where distractors
    are (bench/LEARNING.md round 14); a variant that picks the named object better shows here first.
    """
    from stvg_lab.analysis.scale import read_per_sample
    from stvg_lab.analysis.tables import format_cell, mean_spread
    from stvg_lab.analysis.tags import tag_means

    runs = [("start (SFT)", [root / "start" / "eval"])]
    runs += [(name, [root / name / f"seed{r['seed']}" / "eval" for r in rs]) for name, rs in results.items()]
    if not all((d / "per_sample.jsonl").is_file() for _, dirs in runs for d in dirs):
        return ["", f"(no per-sample scores in some runs: no m_vIoU by {tag})"]
    means = [(name, [tag_means(read_per_sample(d), tag) for d in dirs]) for name, dirs in runs]
    values = list(means[0][1][0])
    if values == [None]:
        return ["", f"(the test clips carry no {tag!r} tag)"]
    counts = ", ".join(f"{v}: {means[0][1][0][v]['n']}" for v in values)
    lines = ["", f"pred m_vIoU by the clip's `{tag}` (`stvg_lab.analysis.tags`; test clips per value: {counts}), %:", "",
             "| variant | " + " | ".join(f"{tag} = {v}" for v in values) + " |", "|---|" + "---:|" * len(values)]
    for name, per_seed in means:
        cells = [format_cell(*mean_spread([m[v]["m_vIoU"] for m in per_seed])[:2], scale=100.0, digits=1)
                 for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def counts_table(start: dict, results: dict[str, list[dict]]) -> list[str]:
    """Markdown lines: greedy box lists against their own span (stvg_lab.analysis.counts), start and variants."""
    from stvg_lab.analysis.tables import format_cell, mean_spread

    if "counts" not in start or not all("counts" in r for rs in results.values() for r in rs):
        return ["", "(no box counts in some results: run each variant again to add them; no training is redone)"]
    pct = lambda vals: format_cell(*mean_spread(vals)[:2], scale=100.0, digits=0)  # noqa: E731
    cols = ["consistent (Eq. 4)", "pred list: short", "exact", "long", "boxes − span frames", "think: boxes − span frames"]
    lines = ["", "Greedy box lists against the answer's own span (`stvg_lab.analysis.counts`), % of answers (consistent: of all; "
             "the rest: of parsed ones):", "", "| variant | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, counts in [("start (SFT)", [start["counts"]]), *((n, [r["counts"] for r in rs]) for n, rs in results.items())]:
        cells = [pct([c["consistent"] for c in counts]), *(pct([c["pred"][k] for c in counts]) for k in ("short", "exact", "long")),
                 format_cell(*mean_spread([c["pred"]["extra"] for c in counts])[:2], scale=1.0, digits=2),
                 format_cell(*mean_spread([c["think"]["extra"] for c in counts])[:2], scale=1.0, digits=2)
                 if all(c["think"] for c in counts) else "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--name", help="the variant's folder under --root")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="tiny_cpu_grpo overrides (stvg-lab train grpo --set)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default=None, help="SFT checkpoint to start from (default: the shipped tiny_cpu_sft)")
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--root", default="bench/out/grpo_sweep")
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--sft-steps", type=int, default=None,
                    help="the control: continue --init's own SFT recipe for this many steps instead of GRPO (--set applies to it)")
    ap.add_argument("--table", action="store_true", help="print the markdown table of every result under --root and exit")
    args = ap.parse_args()
    if args.table:
        print(table(Path(args.root)))
        return
    if not args.name:
        ap.error("--name is required to run a variant")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    r = run_variant(args)
    print(json.dumps({k: r[k] for k in ("name", "seed", "parse_rate", "pred_m_tIoU", "pred_m_vIoU", "think_m_vIoU", "reward", "spans", "spans_changed", "grpo_s")}))


if __name__ == "__main__":
    main()
