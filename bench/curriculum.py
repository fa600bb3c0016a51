"""The round-5 curriculum: a stand-in that reads the video, from scratch, in one command.

    OMP_NUM_THREADS=1 .venv/bin/python bench/curriculum.py --seed 0                    # ~45 min on one core
    OMP_NUM_THREADS=1 .venv/bin/python bench/curriculum.py --seed 0 --data data/synthetic   # the default benchmark (+1 stage, ~1 h): the shipped SFT
    OMP_NUM_THREADS=1 .venv/bin/python bench/curriculum.py --seed 0 --data data/synthetic --grpo-name grpo_t0.7 --grpo-set temperature=0.7
    OMP_NUM_THREADS=1 .venv/bin/python bench/curriculum.py --seed 0 --data data/synthetic --root bench/out/curriculum/seed0_labels \
        --format compact_labels --min-sft 3 --max-sft 3   # frame-labelled answers from the first SFT round (LEARNING.md round 14)
    .venv/bin/python bench/curriculum.py --table bench/out/curriculum/seed{0,1,2}_synthetic

Stages (bench/LEARNING.md round 5 has what each does and why), each skipped when its output exists;
a probe stage (1-3) runs again from its own end (``<stage>_2``, ...) until its held-out gap
reaches its onset (``ONSETS``, changed with ``--onset STAGE=GAP``), at most ``--max-rounds`` times,
else the curriculum stops and says so:

1. ``pre_dark``: ``position_probe.py`` from a fresh stand-in, the cell question on unlit drawn scenes
   (Qwen's order), 1,500 steps;
2. ``solo_tf``: the cell question with the sentence on 12,000 one-object clips (``data/solo12k``,
   made if missing), **text first** (``--text-first``), 1,500 steps;
3. ``bench_tf`` (when ``--data`` is not the default one-object set): the same question on
   ``--data``'s own clips (lit, distractors), 2,000 steps;
4. ``sft1`` / ``sft2`` / ...: grounding SFT on ``--data`` with the cell rows in the mix, text first
   (``learnability_probe.py --aux-frame-cells --prompt-order text_first``), 2,500 steps a round; at
   least ``--min-sft`` rounds (default two), then more from the last one's end while fewer than ``--sft-parse`` of its greedy
   answers on 32 val clips parse, at most ``--max-sft`` rounds (the last one goes on to GRPO either way;
   ``result.json`` names it in ``sft_stage`` and keeps every round's val parse rate);
5. ``grpo``: ``stvg-lab train grpo`` with ``tiny_cpu_grpo`` from the last SFT round (``--grpo-set`` overrides,
   ``--grpo-name`` another folder, so one curriculum can take several GRPO runs);
6. evaluation of the last SFT round and ``grpo`` on ``--n-test`` test clips (``evaluate_model``, baselines
   from the training clips) and the video-reliance control, whole answer and per segment
   (``stvg_lab.analysis.reliance.segment_gaps``) on 32 val clips -> ``<root>/result.json``
   (``result_<grpo-name>.json``; each checkpoint's numbers are kept in ``eval/<stage>.json`` and reused).

``--data`` defaults to ``data/solo_nomotion`` (one object, unlit, queries without motion words),
made if missing; every stage writes under ``--root`` (default ``bench/out/curriculum/seed<k>``, or
``seed<k>_synthetic`` for ``--data data/synthetic``: the shipped checkpoint's, bench/make_shipped_sft.py).
``--table ROOT ...`` prints bench/README.md's table of finished curricula.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from stvg_lab.answer import FORMATS

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = "data/solo_nomotion"
METRICS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
# The held-out gap at which a probe stage counts as a reader. pre_dark's onset is abrupt (0 -> 1.3
# within 250 steps, then > 3), so 0.3 only says "it started". The text-first stages grow slowly and
# the SFT inherits what they reach: round 5's seed 0 left bench_tf at 0.86 and beat the shipped SFT
# (62.9 / 9.5 vs 59.7 / 6.7), seed 1 left solo_tf at 0.65 and bench_tf at 0.50 and did not (57.9 / 5.5).
ONSETS = {"pre_dark": 0.3, "solo_tf": 0.8, "bench_tf": 0.8}
# SynthConfig overrides of the datasets the curriculum makes when they are missing
SOLO = dict(lighting=(0, 0, 0), n_distractors=(0, 0))
NO_MOTION = dict(templates=("the {size} {colour} {shape}", "find the {size} {colour} {shape}"))
log = logging.getLogger("curriculum")


def ensure_data(path: Path, n_train: int, n_val: int, n_test: int, **config) -> None:
    """Generate a synthetic set with ``SynthConfig(**config)`` unless ``path`` holds one; a set made otherwise is an error."""
    from stvg_lab.data.synth import SynthConfig, generate_synthetic
    from stvg_lab.data.synth_config import full_config

    want = json.loads(json.dumps(SynthConfig(**config).to_dict()))  # tuples as JSON lists, as dataset.json has them
    manifest = path / "dataset.json"
    if not manifest.is_file():
        log.info("generating %s (%d/%d/%d clips)", path, n_train, n_val, n_test)
        generate_synthetic(path, n_train, n_val, n_test, config=SynthConfig(**config))
        return
    have = full_config(json.loads(manifest.read_text(encoding="utf-8")).get("config", {}))
    differ = sorted(k for k in want if have.get(k) != want[k])
    if differ:
        raise SystemExit(f"{manifest}: made with other SynthConfig values for {differ}; move it away or pass another folder")


def stage(name: str, done: Path, cmd: list[str], times: dict) -> None:
    """Run ``cmd`` unless ``done`` exists; a failure stops the curriculum with the stage's name."""
    if done.exists():
        log.info("%s: %s exists, skipped", name, done)
        return
    log.info("%s: %s", name, " ".join(cmd))
    t0 = time.time()
    if subprocess.run(cmd).returncode:
        raise SystemExit(f"curriculum stage {name!r} failed; its command: {' '.join(cmd)}")
    times[name] = round(time.time() - t0)


def probe_stage(name: str, probe: list[str], flags: list[str], init: Path | None, root: Path, *,
                rounds: int, onset: float, times: dict) -> Path:
    """A ``position_probe.py`` stage, run again from its own end until its last gap reaches ``onset``.

    Why rounds: a reader's onset is abrupt and its step varies with the seed (LEARNING.md rounds 3
    and 5: seed 0's pre_dark starts between steps 750 and 1,000, seed 1's not within 1,500), and a
    stage that starts from a non-reader does not grow one. Returns the last round's ``final/``.
    """
    gap = float("nan")
    for r in range(1, rounds + 1):
        run = name if r == 1 else f"{name}_{r}"
        stage(run, root / run / "final", [*probe, "--name", run, *flags, *(["--init", str(init)] if init else [])], times)
        gap = json.loads((root / f"{run}.jsonl").read_text(encoding="utf-8").splitlines()[-1])["gap"]
        log.info("%s: gap %.3f (onset at %.2f)", run, gap, onset)
        init = root / run / "final"
        if gap >= onset:
            return init
    raise SystemExit(f"curriculum stage {name!r}: no reader after {rounds} rounds (last gap {gap:.3f} < {onset}); try another --seed")


def sft_stages(sft: list[str], reader: Path, root: Path, *, rounds: int, parse: float, times: dict,
               min_rounds: int = 2) -> tuple[str, dict[str, float]]:
    """Grounding SFT rounds of 2,500 steps, each from the last one's end: at least ``min_rounds``, then more
    while the greedy answers on the val clips parse less often than ``parse``, at most ``rounds`` in all.

    Why rounds: the SFT learns the answer's syntax at a seed-dependent pace (LEARNING.md round 6:
    after two rounds seed 0's val answers all parse, seeds 1 and 2 parse 44 % and 41 %, and the pred
    list breaks into digit runs). Returns the last round's name and every round's val parse rate.
    """
    if not 1 <= min_rounds <= rounds:
        raise SystemExit(f"--min-sft {min_rounds} must be between 1 and --max-sft {rounds}")
    rates: dict[str, float] = {}
    for r in range(1, rounds + 1):
        run, init = f"sft{r}", reader if r == 1 else root / f"sft{r - 1}" / "final"
        stage(run, root / run / "final", [*sft, "--name", run, "--model", str(init)], times)
        metrics = json.loads((root / run / "eval" / "metrics.json").read_text(encoding="utf-8"))
        rates[run] = 1 - metrics["parse_failure_rate"]
        log.info("%s: %.0f %% of %d val answers parse (wanted %.0f %%)", run, 100 * rates[run], metrics["n"], 100 * parse)
        if r >= min_rounds and rates[run] >= parse:
            break
    else:
        log.warning("%s: the SFT still parses %.0f %% of val answers after %d rounds; GRPO starts from it", run, 100 * rates[run], rounds)
    return run, rates


def check_grpo_start(run: Path, sft: Path) -> None:
    """A finished GRPO stage must have started from ``sft``; one from an earlier SFT round is an error naming both."""
    recipe = run / "recipe.yaml"
    if not (run / "final").exists() or not recipe.is_file():
        return
    from stvg_lab.train.recipe import load_recipe

    started = load_recipe(recipe).init_from
    if started and Path(started) != sft:
        raise SystemExit(f"{recipe}: this GRPO run started from {started}, the SFT is now {sft}; move {run} away or pass another --grpo-name")


def check_sft_format(root: Path, fmt: str) -> None:
    """Finished SFT rounds in ``root`` must have trained answer format ``fmt``: a skipped stage of another format is an error naming it."""
    from stvg_lab.train.recipe import load_recipe

    for recipe in sorted(root.glob("sft*/recipe.yaml")):
        have = load_recipe(recipe).answer_format
        if have != fmt:
            raise SystemExit(f"{recipe}: this SFT round trained answer format {have!r}, not --format {fmt!r}; pass another --root")


def parse_onsets(items: list[str]) -> dict[str, float]:
    """``ONSETS`` updated by ``STAGE=GAP`` strings; an unknown stage or a bad number is an error naming it."""
    onsets = dict(ONSETS)
    for item in items:
        name, _, gap = item.partition("=")
        if name not in ONSETS:
            raise SystemExit(f"--onset {item!r}: no probe stage {name!r} (stages: {', '.join(ONSETS)})")
        try:
            onsets[name] = float(gap)
        except ValueError:
            raise SystemExit(f"--onset {item!r}: {gap!r} is not a number") from None
    return onsets


def evaluate(checkpoint: Path, data: Path, out: Path, n_test: int, fmt: str = "compact") -> dict:
    """Test metrics (pred and think tubes, baselines) and the reliance control of one checkpoint, in answer format ``fmt``."""
    from stvg_lab.analysis.reliance import grounding_rows, segment_gaps, video_reliance
    from stvg_lab.checkpoints import written_after
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.evaluate import evaluate_model
    from stvg_lab.model import load_model

    # eval/<stage>.json: a second result file (another --grpo-name) reuses it, unless the stage was retrained since
    done = out.with_suffix(".json")
    fresh = written_after(done, checkpoint)
    if fresh and json.loads(done.read_text(encoding="utf-8")).get("n_test") == n_test:
        return json.loads(done.read_text(encoding="utf-8"))["metrics"]
    train, test, val = (load_synthetic(data, split) for split in ("train", "test", "val"))
    m = evaluate_model(checkpoint, test[:n_test], out, fmt, train_samples=train, progress=False, resume=False).metrics
    model, processor = load_model(checkpoint)
    metrics = {
        "parse_rate": 1 - m["parse_failure_rate"],
        **{f"{tube}_{k}": m[tube][k] for tube in ("pred", "think") if m.get(tube) for k in METRICS},
        "baselines": {b: {k: v[k] for k in METRICS} for b, v in (m.get("baselines") or {}).items()},
        "reliance": video_reliance(model, val[:32], fmt, processor=processor),
        "reliance_by_segment": segment_gaps(model, processor, grounding_rows(val[:32], fmt)),
    }
    done.write_text(json.dumps({"n_test": n_test, "metrics": metrics}, indent=1))
    return metrics


def sft_stage(result: dict) -> str:
    """The SFT round a result's GRPO started from (``sft2`` in results written before SFT rounds existed)."""
    return result.get("sft_stage", "sft2")


def table(roots: list[Path], grpo: str = "grpo") -> str:
    """Mean ± sample std over the curricula in ``roots`` (one seed each) of SFT and GRPO, as bench/README.md shows it."""
    from stvg_lab.analysis.tables import format_cell, mean_spread

    name = "result.json" if grpo == "grpo" else f"result_{grpo}.json"
    missing = [str(r / name) for r in roots if not (r / name).is_file()]
    if missing:
        raise SystemExit(f"no curriculum result in {', '.join(missing)}")
    results = [json.loads((r / name).read_text(encoding="utf-8")) for r in roots]
    setups = [(r["data"], r["n_test"], r.get("format", "compact")) for r in results]  # results before --format: compact
    if len(set(setups)) > 1:
        raise SystemExit(f"the curricula ran on different benchmarks, test sizes or answer formats: {setups}")
    cell = lambda vals: format_cell(*mean_spread(vals)[:2])  # noqa: E731
    head = " | ".join(f"{tube} {m}" for tube in ("pred", "think") for m in METRICS)
    lines = [f"seeds {[r['seed'] for r in results]} on {results[0]['data']}, {results[0]['n_test']} test clips, answer format "
             f"{setups[0][2]}, %, mean ± sample std over seeds",
             "", f"| model | parsed | {head} | span-digit gap | answer gap |", "|---|" + "---:|" * (2 * len(METRICS) + 3)]
    sft_rounds = ", ".join(f"seed {r['seed']}: {sft_stage(r)}" for r in results)
    for run, label in ((None, f"curriculum SFT ({sft_rounds})"), (grpo, f"+ GRPO ({grpo})")):
        rows = [r[run or sft_stage(r)] for r in results]
        cells = [cell([x["parse_rate"] for x in rows]), *(cell([x.get(f"{t}_{m}", 0.0) for x in rows]) for t in ("pred", "think") for m in METRICS)]
        cells += [format_cell(*mean_spread([x["reliance_by_segment"]["time"]["gap"] for x in rows])[:2], scale=1, digits=2),
                  format_cell(*mean_spread([x["reliance"]["gap"] for x in rows])[:2], scale=1, digits=3)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for base, b in results[0][sft_stage(results[0])]["baselines"].items():
        lines.append(f"| baseline: {base} | – | " + " | ".join(f"{100 * b[m]:.1f}" for m in METRICS) + " |" + " – |" * (len(METRICS) + 2))
    rewards = [r[f"{grpo}_reward"] for r in results if f"{grpo}_reward" in r]
    if rewards:
        lines += ["", f"GRPO reward (Eq. 10, first → last fifth of logged steps): "
                  + ", ".join(f"seed {r['seed']}: {w['first']:.2f} → {w['last']:.2f}" for r, w in zip(results, rewards))]
    return "\n".join(lines)


def main() -> None:
    """Run the stages that are missing, then evaluate and write ``result.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=DEFAULT_DATA, help="the grounding benchmark (default: made if missing)")
    ap.add_argument("--solo", default="data/solo12k", help="one-object clips for the text-first reader (made if missing)")
    ap.add_argument("--root", default=None, help="default bench/out/curriculum/seed<k>, seed<k>_<data folder name> for another --data")
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--format", default="compact", choices=sorted(FORMATS),
                    help="the answer format of the SFT rounds, GRPO and the evaluation (the probe stages ask cells, not answers)")
    ap.add_argument("--onset", action="append", default=[], metavar="STAGE=GAP",
                    help=f"a probe stage is done when its held-out gap reaches GAP (defaults {ONSETS})")
    ap.add_argument("--grpo-name", default="grpo", help="the GRPO stage's folder; its results go to result_<name>.json unless it is 'grpo'")
    ap.add_argument("--grpo-set", action="append", default=[], metavar="KEY=VALUE",
                    help="recipe overrides of the GRPO stage (`stvg-lab train grpo --set`), e.g. temperature=0.7")
    ap.add_argument("--max-rounds", type=int, default=3, help="at most this many runs of a probe stage, each from the last one's end")
    ap.add_argument("--sft-parse", type=float, default=0.9, help="SFT rounds go on (after two) until this share of val answers parse")
    ap.add_argument("--max-sft", type=int, default=4, help="at most this many SFT rounds of 2,500 steps")
    ap.add_argument("--min-sft", type=int, default=2, help="at least this many SFT rounds (bench/make_shipped_sft.py: 3)")
    ap.add_argument("--table", nargs="+", metavar="ROOT", help="print the markdown table of these finished curricula and exit")
    args = ap.parse_args()
    if args.table:
        print(table([Path(r) for r in args.table], args.grpo_name))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from stvg_lab.train.logging import read_log, reward_change

    data, solo = Path(args.data), Path(args.solo)
    root = Path(args.root or f"bench/out/curriculum/seed{args.seed}" + ("" if data == Path(DEFAULT_DATA) else f"_{data.name}"))
    if data == Path(DEFAULT_DATA):
        ensure_data(data, 3000, 50, 100, **SOLO, **NO_MOTION)
    ensure_data(solo, 12000, 64, 0, **SOLO)
    py, seed = [sys.executable], ["--seed", str(args.seed)]
    probe = [*py, str(BENCH / "position_probe.py"), "--root", str(root), "--every", "250", "--save", *seed]
    sft = [*py, str(BENCH / "learnability_probe.py"), "--root", str(root), "--data", str(data), "--hidden", "128", "--layers", "4",
           "--format", args.format, "--lr", "1e-3", "--steps", "2500", "--eval", "32", "--aux-frame-cells",
           "--prompt-order", "text_first", *seed]  # the reader's own order, recorded in the SFT's recipe
    times: dict[str, int] = {}
    onsets = parse_onsets(args.onset)
    rounds = dict(rounds=args.max_rounds, times=times)
    reader = probe_stage("pre_dark", probe, ["--task", "cell", "--light", "0", "--steps", "1500"], None, root, onset=onsets["pre_dark"], **rounds)
    reader = probe_stage("solo_tf", probe, ["--data", str(solo), "--text-first", "--steps", "1500"], reader, root, onset=onsets["solo_tf"], **rounds)
    if data != Path(DEFAULT_DATA):
        reader = probe_stage("bench_tf", probe, ["--data", str(data), "--steps", "2000"], reader, root, onset=onsets["bench_tf"], **rounds)
    check_sft_format(root, args.format)
    last_sft, sft_parse = sft_stages(sft, reader, root, rounds=args.max_sft, parse=args.sft_parse, times=times,
                                       min_rounds=args.min_sft)
    grpo = args.grpo_name
    check_grpo_start(root / grpo, root / last_sft / "final")
    stage(grpo, root / grpo / "final", [*py, "-m", "stvg_lab.cli", "train", "grpo", "--recipe", "tiny_cpu_grpo", "--out", str(root / grpo),
                                        "--data", str(data), "--init-from", str(root / last_sft / "final"),
                                        "--set", "torch_threads=1", "--set", f"seed={args.seed}", "--set", f"answer_format={args.format}",
                                        *(x for kv in args.grpo_set for x in ("--set", kv))], times)
    t0 = time.time()
    result = {"seed": args.seed, "data": str(data), "n_test": args.n_test, "format": args.format, "onsets": onsets, "grpo_set": args.grpo_set, "stage_s": times,
              "sft_stage": last_sft, "sft_val_parse": sft_parse,
              **{name: evaluate(root / name / "final", data, root / "eval" / name, args.n_test, args.format) for name in (last_sft, grpo)}}
    result["eval_s"] = round(time.time() - t0)
    result[f"{grpo}_reward"] = reward_change(read_log(root / grpo))
    out = root / ("result.json" if grpo == "grpo" else f"result_{grpo}.json")
    if out.is_file():  # a re-run skips finished stages: keep the times the run that did them recorded
        result["stage_s"] = {**json.loads(out.read_text(encoding="utf-8")).get("stage_s", {}), **times}
    out.write_text(json.dumps(result, indent=1))
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
