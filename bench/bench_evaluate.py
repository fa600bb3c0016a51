# .venv/bin/python bench/bench_evaluate.py  [--n 10000] [--eval-frames]
"""Time ``stvg_lab.metrics.evaluate`` on synthetic tubes; print the median of 3 runs in seconds.

Each sample is a gt tube of 50-200 frames in a 640x360 video and a prediction shifted by
up to ±30 frames, with boxes jittered by up to ±20 px. About 5% of the ids have no
prediction. With ``--eval-frames`` vIoU is scored on TubeDETR's 5 fps frames.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from stvg_lab.metrics import evaluate, tubedetr_sampled_frames


def make_tubes(n: int, seed: int = 0) -> tuple[dict, dict, dict]:
    """Return ``(preds, gts, eval_frames)`` for ``n`` synthetic samples (plain dicts of lists, as from JSON)."""
    rng = np.random.default_rng(seed)
    preds, gts, eval_frames = {}, {}, {}
    for i in range(n):
        sid = f"s{i:05d}"
        length = int(rng.integers(50, 201))
        start = int(rng.integers(0, 400))
        xy = rng.uniform([0, 0], [400, 200])
        wh = rng.uniform([40, 40], [240, 160])
        drift = np.cumsum(rng.normal(0, 1.0, size=(length, 2)), axis=0)  # (length, 2)
        x1y1 = xy + drift
        boxes = np.concatenate([x1y1, x1y1 + wh], axis=1)  # (length, 4)
        gts[sid] = {start + k: boxes[k].tolist() for k in range(length)}
        eval_frames[sid] = tubedetr_sampled_frames(0, 700, fps=30.0)
        if rng.random() < 0.05:
            continue
        shift = int(rng.integers(-30, 31))
        pred_boxes = boxes + rng.uniform(-20, 20, size=boxes.shape)
        preds[sid] = {start + shift + k: pred_boxes[k].tolist() for k in range(length)}
    return preds, gts, eval_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--eval-frames", action="store_true", help="score vIoU on TubeDETR's 5 fps frames")
    args = ap.parse_args()
    preds, gts, eval_frames = make_tubes(args.n)
    n_boxes = sum(len(t) for t in gts.values())
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        res = evaluate(preds, gts, eval_frames=eval_frames if args.eval_frames else None)
        times.append(time.perf_counter() - t0)
    summary = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}
    print(f"evaluate: {args.n} samples, {n_boxes} gt boxes, eval_frames={args.eval_frames}")
    print(f"result: {summary}")
    print(f"median of 3: {statistics.median(times):.3f} s")


if __name__ == "__main__":
    main()
