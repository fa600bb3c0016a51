"""The round-5 curriculum: a stand-in that reads the video, from scratch, in one command.

    OMP_NUM_THREADS=1 .venv/bin/python bench/curriculum.py --seed 0                    # ~45 min on one core
    OMP_NUM_THREADS=1 .venv/bin/python bench/curriculum.py --seed 0 --data data/synthetic   # the default benchmark (+1 stage, ~1 h)

Stages (bench/LEARNING.md round 5 has what each does and why), each skipped when its output exists;
a probe stage (1-3) runs again from its own end (``<stage>_2``, ...) until its held-out gap
reaches ``--onset-gap``, at most ``--max-rounds`` times, else the curriculum stops and says so:

1. ``pre_dark``: ``position_probe.py`` from a fresh stand-in, the cell question on unlit drawn scenes
   (Qwen's order), 1,500 steps;
2. ``solo_tf``: the cell question with the sentence on 12,000 one-object clips (``data/solo12k``,
   made if missing), **text first** (``--text-first``), 1,500 steps;
3. ``bench_tf`` (when ``--data`` is not the default one-object set): the same question on
   ``--data``'s own clips (lit, distractors), 2,000 steps;
4. ``sft1`` / ``sft2``: grounding SFT on ``--data`` with the cell rows in the mix
   (``learnability_probe.py --aux-frame-cells``; the order comes with the checkpoint), 2 x 2,500 steps;
5. ``grpo``: ``stvg-lab train grpo`` with ``tiny_cpu_grpo`` from ``sft2``;
6. evaluation of ``sft2`` and ``grpo`` on ``--n-test`` test clips (``evaluate_model``, baselines
   from the training clips) and the video-reliance control, whole answer and per segment
   (``stvg_lab.analysis.reliance.segment_gaps``) on 32 val clips -> ``<root>/result.json``.

``--data`` defaults to ``data/solo_nomotion`` (one object, unlit, queries without motion words),
made if missing; every stage writes under ``--root`` (default ``bench/out/curriculum/seed<k>``).
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

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH = Path(__file__).resolve().parent
DEFAULT_DATA = "data/solo_nomotion"
METRICS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
# SynthConfig overrides of the datasets the curriculum makes when they are missing
SOLO = dict(lighting=(0, 0, 0), n_distractors=(0, 0))
NO_MOTION = dict(templates=("the {size} {colour} {shape}", "find the {size} {colour} {shape}"))
log = logging.getLogger("curriculum")


def ensure_data(path: Path, n_train: int, n_val: int, n_test: int, **config) -> None:
    """Generate a synthetic set with ``SynthConfig(**config)`` unless ``path`` holds one; a set made otherwise is an error."""
    from stvg_lab.data.synth import SynthConfig, generate_synthetic

    want = json.loads(json.dumps(SynthConfig(**config).to_dict()))  # tuples as JSON lists, as dataset.json has them
    manifest = path / "dataset.json"
    if not manifest.is_file():
        log.info("generating %s (%d/%d/%d clips)", path, n_train, n_val, n_test)
        generate_synthetic(path, n_train, n_val, n_test, config=SynthConfig(**config))
        return
    have = json.loads(manifest.read_text(encoding="utf-8")).get("config", {})
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


def evaluate(checkpoint: Path, data: Path, out: Path, n_test: int) -> dict:
    """Test metrics (pred and think tubes, baselines) and the reliance control of one checkpoint."""
    from stvg_lab.analysis.reliance import grounding_rows, segment_gaps, video_reliance
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.evaluate import evaluate_model
    from stvg_lab.model import load_model

    train, test, val = (load_synthetic(data, split) for split in ("train", "test", "val"))
    m = evaluate_model(checkpoint, test[:n_test], out, "compact", train_samples=train, progress=False, resume=False).metrics
    model, processor = load_model(checkpoint)
    return {
        "parse_rate": 1 - m["parse_failure_rate"],
        **{f"{tube}_{k}": m[tube][k] for tube in ("pred", "think") if m.get(tube) for k in METRICS},
        "baselines": {b: {k: v[k] for k in METRICS} for b, v in (m.get("baselines") or {}).items()},
        "reliance": video_reliance(model, val[:32], "compact", processor=processor),
        "reliance_by_segment": segment_gaps(model, processor, grounding_rows(val[:32], "compact")),
    }


def main() -> None:
    """Run the stages that are missing, then evaluate and write ``result.json``."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", default=DEFAULT_DATA, help="the grounding benchmark (default: made if missing)")
    ap.add_argument("--solo", default="data/solo12k", help="one-object clips for the text-first reader (made if missing)")
    ap.add_argument("--root", default=None, help="default bench/out/curriculum/seed<k>")
    ap.add_argument("--n-test", type=int, default=100)
    ap.add_argument("--onset-gap", type=float, default=0.3, help="a probe stage is done when its held-out gap reaches this")
    ap.add_argument("--max-rounds", type=int, default=3, help="at most this many runs of a probe stage, each from the last one's end")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    root = Path(args.root or f"bench/out/curriculum/seed{args.seed}")
    data, solo = Path(args.data), Path(args.solo)
    if data == Path(DEFAULT_DATA):
        ensure_data(data, 3000, 50, 100, **SOLO, **NO_MOTION)
    ensure_data(solo, 12000, 64, 0, **SOLO)
    py, seed = [sys.executable], ["--seed", str(args.seed)]
    probe = [*py, str(BENCH / "position_probe.py"), "--root", str(root), "--every", "250", "--save", *seed]
    sft = [*py, str(BENCH / "learnability_probe.py"), "--root", str(root), "--data", str(data), "--hidden", "128", "--layers", "4",
           "--format", "compact", "--lr", "1e-3", "--steps", "2500", "--eval", "32", "--aux-frame-cells", *seed]
    times: dict[str, int] = {}
    rounds = dict(rounds=args.max_rounds, onset=args.onset_gap, times=times)
    reader = probe_stage("pre_dark", probe, ["--task", "cell", "--light", "0", "--steps", "1500"], None, root, **rounds)
    reader = probe_stage("solo_tf", probe, ["--data", str(solo), "--text-first", "--steps", "1500"], reader, root, **rounds)
    if data != Path(DEFAULT_DATA):
        reader = probe_stage("bench_tf", probe, ["--data", str(data), "--steps", "2000"], reader, root, **rounds)
    stage("sft1", root / "sft1" / "final", [*sft, "--name", "sft1", "--model", str(reader)], times)
    stage("sft2", root / "sft2" / "final", [*sft, "--name", "sft2", "--model", str(root / "sft1" / "final")], times)
    stage("grpo", root / "grpo" / "final", [*py, "-m", "stvg_lab.cli", "train", "grpo", "--recipe", "tiny_cpu_grpo", "--out", str(root / "grpo"),
                                            "--data", str(data), "--init-from", str(root / "sft2" / "final"),
                                            "--set", "torch_threads=1", "--set", f"seed={args.seed}"], times)
    t0 = time.time()
    result = {"seed": args.seed, "data": str(data), "n_test": args.n_test, "stage_s": times,
              **{name: evaluate(root / name / "final", data, root / "eval" / name, args.n_test) for name in ("sft2", "grpo")}}
    result["eval_s"] = round(time.time() - t0)
    (root / "result.json").write_text(json.dumps(result, indent=1))
    log.info("wrote %s", root / "result.json")


if __name__ == "__main__":
    main()
