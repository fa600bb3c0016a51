# .venv/bin/python bench/bench_rewards.py            (--prompts 128 --generations 8 --repeats 5)
"""Time the five STVG-o1 rewards (Eq. 3-10) on one GRPO step's worth of completions.

A step is ``prompts x generations`` completions (128 x 8 = 1024, the paper's global batch
of 128 with 8 rollouts each). The ground truth is drawn at HC-STVG's model shape: 40 kept
frames of 336x196, a tube of 8-16 frames. The completions are a mix, in the paper format:

* 70% valid and consistent: span within ±3 frames of the gt, boxes jittered by ±15 px,
  ~12 frames each;
* 15% inconsistent: valid, but a third of the pred boxes left out;
* 15% malformed: cut at a random character, or with text after the last tag.

Each reward is called as GRPOTrainer calls it (the whole step at once); the figure is
the median of ``--repeats`` calls. "all five" is the sum of the five medians: the reward
cost of one step. ``total_reward`` (one call computing everything) is timed too.
Results are printed and written to ``bench/out/bench_rewards.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from stvg_lab.answer import format_answer, parse_answer
from stvg_lab.rewards import DEFAULT_REWARD_FUNCS, total_reward

NUM_FRAMES, WIDTH, HEIGHT = 40, 336, 196


def make_step(prompts: int, generations: int, seed: int = 0) -> tuple[list[str], dict[str, list]]:
    """Completions and reward columns for one step, each prompt's row repeated per generation."""
    rng = np.random.default_rng(seed)
    completions: list[str] = []
    cols: dict[str, list] = {"gt_span": [], "gt_tube": [], "frame_size": [], "answer_format": []}
    for _ in range(prompts):
        length = int(rng.integers(8, 17))
        s = int(rng.integers(0, NUM_FRAMES - length))
        e = s + length - 1
        xy = rng.uniform([0, 0], [WIDTH - 120, HEIGHT - 100])
        wh = rng.uniform([40, 40], [120, 100])
        drift = np.cumsum(rng.normal(0, 2.0, size=(length, 2)), axis=0)  # (length, 2)
        boxes = np.clip(np.concatenate([xy + drift, xy + drift + wh], axis=1), 0, [WIDTH, HEIGHT] * 2)  # (length, 4)
        rows = [[s + k, *boxes[k].round(1).tolist()] for k in range(length)]
        for _ in range(generations):
            ps = int(np.clip(s + rng.integers(-3, 4), 0, NUM_FRAMES - 1))
            pe = int(np.clip(e + rng.integers(-3, 4), ps, NUM_FRAMES - 1))
            gt_at = {r[0]: r[1:] for r in rows}
            anchor = lambda k: gt_at.get(k, rows[0][1:] if k < s else rows[-1][1:])  # noqa: E731
            pred = {k: (np.asarray(anchor(k)) + rng.uniform(-15, 15, 4)).clip(0).tolist() for k in range(ps, pe + 1)}
            think = {k: (np.asarray(b) + rng.uniform(-10, 10, 4)).clip(0).tolist() for k, b in pred.items()}
            kind = rng.random()
            if 0.70 <= kind < 0.85:  # inconsistent: drop a third of the pred boxes
                keep = sorted(pred)[:: 3] + sorted(pred)[1::3]
                pred = {k: pred[k] for k in sorted(keep)}
            text = format_answer((ps, pe), pred, think, "paper")
            if kind >= 0.85:  # malformed
                text = text[: int(rng.integers(0, len(text)))] if rng.random() < 0.5 else text + " The man."
            completions.append(text)
            cols["gt_span"].append([s, e])
            cols["gt_tube"].append(rows)
            cols["frame_size"].append([WIDTH, HEIGHT])
            cols["answer_format"].append("paper")
    return completions, cols


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    completions, cols = make_step(args.prompts, args.generations)
    n = len(completions)
    parsed = [parse_answer(c) for c in completions]
    mix = {
        "consistent": sum(p.ok and p.consistent for p in parsed),
        "inconsistent": sum(p.ok and not p.consistent for p in parsed),
        "malformed": sum(not p.ok for p in parsed),
    }
    mean_chars = statistics.mean(len(c) for c in completions)
    print(f"{n} completions ({args.prompts} prompts x {args.generations}), mean {mean_chars:.0f} chars, {mix}")

    per_reward = {}
    for f in DEFAULT_REWARD_FUNCS:
        per_reward[f.__name__] = median_time(lambda f=f: f(completions, **cols), args.repeats)
    parse_s = median_time(lambda: [parse_answer(c) for c in completions], args.repeats)
    total_s = median_time(lambda: total_reward(completions, **cols), args.repeats)
    five = sum(per_reward.values())
    means = {f.__name__: float(np.mean(f(completions, **cols))) for f in DEFAULT_REWARD_FUNCS}

    for name, t in per_reward.items():
        print(f"  {name:<20} {t * 1e3:8.1f} ms   mean reward {means[name]:+.3f}")
    print(f"  {'(parse only)':<20} {parse_s * 1e3:8.1f} ms")
    print(f"all five rewards: {five * 1e3:.1f} ms per step = {n / five:,.0f} completions/s (median of {args.repeats})")
    print(f"total_reward (one call): {total_s * 1e3:.1f} ms = {n / total_s:,.0f} completions/s")

    out = Path(__file__).parent / "out" / "bench_rewards.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "completions": n, "mix": mix, "per_reward_s": per_reward, "parse_s": parse_s,
        "all_five_s": five, "completions_per_s": n / five, "total_reward_s": total_s, "mean_reward": means,
    }, indent=2))


if __name__ == "__main__":
    main()
