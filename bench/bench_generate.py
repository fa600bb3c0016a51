# .venv/bin/python bench/bench_generate.py            (add --quick for a smoke run; --batch-sizes 1 4 to compare batching)
"""Generation throughput of the tiny CPU stand-in for each answer format (paper Table 9's columns).

The same ``--n`` synthetic test clips (224x224, 14 kept frames; generated into a temp folder)
are answered greedily by a freshly built, untrained ``build_tiny_model`` through
``stvg_lab.infer.predict``, once per answer format, with the default length budget
(``answer_token_budget``). An untrained model never closes its answer, so every sample
generates exactly the budget: the figures are the cost of a full-length answer of each
format (the longest a valid answer over all 14 frames can be), which is what the format
choice changes. One warm-up batch is run first and not timed.

Printed per format and batch size: budget tokens, mean generated tokens, s/sample
(``latency_s``, generate only, wall clock), tokens/s, CPU s/sample (process time of all
threads, decoding included: steadier than wall time when other jobs share the cores), and the
peak RSS of the process during generation.
Written to ``bench/out/bench_generate.json`` and, with matplotlib, ``bench/out/bench_generate.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stvg_lab.answer import FORMATS
from stvg_lab.data.synth import generate_synthetic, load_synthetic
from stvg_lab.infer import answer_token_budget, predict
from stvg_lab.model import build_tiny_model, load_model


def bench_format(model, processor, samples, fmt: str, batch_size: int) -> dict:
    cpu0 = time.process_time()
    preds = predict(model, processor, samples, fmt, batch_size=batch_size, progress=False)
    cpu = time.process_time() - cpu0  # all threads of the process, video decoding included
    tokens = np.array([p.generated_tokens for p in preds], dtype=np.float64)
    latency = np.array([p.latency_s for p in preds], dtype=np.float64)
    return {
        "format": fmt,
        "batch_size": batch_size,
        "samples": len(preds),
        "budget_tokens": answer_token_budget(processor.tokenizer, len(preds[0].frame_numbers), preds[0].model_size, fmt),
        "mean_generated_tokens": float(tokens.mean()),
        "s_per_sample": float(latency.mean()),
        "tokens_per_s": float(tokens.sum() / latency.sum()),
        "cpu_s_per_sample": cpu / len(preds),
        "peak_rss_mb": max(p.peak_mem_bytes for p in preds) / 2**20,
        "parsed": sum(p.ok for p in preds),
    }


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["batch_size"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / len(sizes)
    for j, bs in enumerate(sizes):
        sub = [r for r in rows if r["batch_size"] == bs]
        x = np.arange(len(sub)) + j * width
        axes[0].bar(x, [r["s_per_sample"] for r in sub], width, label=f"batch {bs}")
        axes[1].bar(x, [r["tokens_per_s"] for r in sub], width, label=f"batch {bs}")
    names = [r["format"] for r in rows if r["batch_size"] == sizes[0]]
    for ax, title in zip(axes, ("s / sample (full-length answer)", "generated tokens / s")):
        ax.set_xticks(np.arange(len(names)) + width * (len(sizes) - 1) / 2, names, rotation=15)
        ax.set_title(title)
    axes[0].legend()
    fig.suptitle("tiny Qwen2.5-VL stand-in, CPU, greedy", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="synthetic test clips")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1])
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    ap.add_argument("--quick", action="store_true", help="2 clips, paper and compact_no_think only")
    ap.add_argument("--out", default="bench/out/bench_generate.json")
    args = ap.parse_args()
    if args.quick:
        args.n, args.formats = 2, ["paper", "compact_no_think"]
    logging.basicConfig(level=logging.WARNING)

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_generate_") as tmp:
        tmp = Path(tmp)
        root = generate_synthetic(tmp / "data", 1, 0, args.n, seed=0, progress=False, workers=1)
        samples = load_synthetic(root, "test")
        model, processor = load_model(build_tiny_model(tmp / "tiny"), device="cpu")
        predict(model, processor, samples[:1], "compact_no_think", max_new_tokens=16, progress=False)  # warm-up
        print(f"{len(samples)} clips, {torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs")
        print(f"{'format':18s} {'batch':>5s} {'budget':>6s} {'tokens':>7s} {'s/sample':>9s} {'tokens/s':>9s} {'CPU s/sample':>13s} {'peak RSS MB':>12s}")
        t0 = time.perf_counter()
        for bs in args.batch_sizes:
            for fmt in args.formats:
                r = bench_format(model, processor, samples, fmt, bs)
                rows.append(r)
                print(
                    f"{fmt:18s} {bs:5d} {r['budget_tokens']:6d} {r['mean_generated_tokens']:7.0f} "
                    f"{r['s_per_sample']:9.3f} {r['tokens_per_s']:9.0f} {r['cpu_s_per_sample']:13.3f} {r['peak_rss_mb']:12.0f}"
                )
        print(f"total {time.perf_counter() - t0:.1f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    try:
        plot(rows, out.with_suffix(".png"))
        print(f"wrote {out.with_suffix('.png')}")
    except ImportError:
        pass


if __name__ == "__main__":
    main()
