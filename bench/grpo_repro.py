"""Is a GRPO run reproducible to the bit across processes, and what makes it so?

    .venv/bin/python bench/grpo_repro.py --steps 10 --repeats 2                         # as the demo runs it
    .venv/bin/python bench/grpo_repro.py --steps 30 --data data/synthetic --data /elsewhere/data/synthetic  # two generations of the data

Runs ``stvg-lab train grpo`` (``tiny_cpu_grpo`` from the shipped SFT on ``--data``, one thread,
``logging_steps=1``) ``--repeats`` times, each in a fresh process with ``--env`` added to its
environment (run ``i`` on ``--data[i % len(--data)]``), and compares their ``log.jsonl`` rows to the
bit with the first run's: the first step where a column differs and the largest relative difference
of ``loss``. Three fresh clones of the demo gave three GRPO results (bench/LEARNING.md round 9); this
tells apart the process (one data folder, repeated) from the data (two generations of it; round 10).
Nothing is scored. Each run takes ~2 s a step plus ~10 s start-up.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from stvg_lab.train.logging import read_log  # a run's log.jsonl rows

# Columns that differ between identical runs for reasons outside the math (wall-clock time).
CLOCK = {"time", "elapsed", "step_time", "train_runtime", "train_samples_per_second", "train_steps_per_second"}


def compare(a: list[dict], b: list[dict]) -> dict:
    """Where two runs' logs part: the first (step, column) that differs, and loss's largest relative difference.

    Rows are matched by position; a length mismatch is itself a difference (reported as ``rows``).
    """
    first = None
    loss_rel = 0.0
    for ra, rb in zip(a, b):
        for key in sorted(set(ra) | set(rb)):
            if key in CLOCK:
                continue
            if ra.get(key) != rb.get(key) and first is None:
                first = {"step": ra.get("step"), "column": key, "a": ra.get(key), "b": rb.get(key)}
        la, lb = ra.get("loss"), rb.get("loss")
        if isinstance(la, float) and isinstance(lb, float) and la != lb:
            loss_rel = max(loss_rel, abs(la - lb) / max(abs(la), abs(lb)))
    return {"identical": first is None and len(a) == len(b), "first_difference": first, "loss_max_rel": loss_rel,
            "rows": [len(a), len(b)]}


def run_once(out: Path, steps: int, data: str, env: dict[str, str]) -> Path:
    """One fresh-process GRPO run of ``steps`` steps into ``out`` (removed first); returns ``out``."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [sys.executable, "-m", "stvg_lab.cli", "train", "grpo", "--out", str(out), "--data", data,
           "--max-steps", str(steps), "--set", "logging_steps=1", "--set", f"save_steps={steps + 1}"]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **env}
    subprocess.run(cmd, env=full_env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--data", action="append", default=None, help="dataset folder(s); repeat to alternate (default data/synthetic)")
    ap.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="added to each run's environment")
    ap.add_argument("--root", default="bench/out/grpo_repro")
    args = ap.parse_args()
    if bad := [kv for kv in args.env if "=" not in kv]:
        ap.error(f"--env takes NAME=VALUE, got {bad}")
    env = dict(kv.split("=", 1) for kv in args.env)
    tag = "_".join(f"{k}-{v}" for k, v in sorted(env.items())) or "default"
    data = args.data or ["data/synthetic"]
    if len(data) > 1:
        tag += f"_{len(data)}data"
    runs = [run_once(Path(args.root) / tag / f"run{i}", args.steps, data[i % len(data)], env) for i in range(args.repeats)]
    logs = [read_log(r) for r in runs]
    result = {"env": env, "data": data, "steps": args.steps, "pairs": [compare(logs[0], other) for other in logs[1:]]}
    (Path(args.root) / tag / "result.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
