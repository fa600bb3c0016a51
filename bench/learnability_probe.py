"""Learnability probe: does SFT teach the CPU stand-in to emit a parseable answer and to ground?

Run (reproduces the best configuration in bench/LEARNING.md; one torch thread, ~12 min):

    OMP_NUM_THREADS=1 .venv/bin/python bench/learnability_probe.py \
        --name best --hidden 128 --layers 4 --format compact --lr 1e-3 --steps 700 --eval 16

Trains ``tiny_cpu`` with the given overrides via ``stvg_lab.train.sft.run_sft`` into
``bench/out/learning/<name>``, then scores greedy answers on the first ``--eval`` validation clips with
``stvg_lab.evaluate.evaluate_model`` (baselines from the training clips), and writes one JSON line
of results to ``bench/out/learning/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def aux_reliance(model, processor, samples, recipe, make_row, seed: int = 0) -> dict:
    """Own vs swapped-video loss of one auxiliary question per sample (``frame_box_row``, ``frame_cell_row``), batches of 8."""
    import numpy as np

    from stvg_lab.analysis.reliance import swap_gap
    from stvg_lab.train.dataset import ClipCache

    cache, rng = ClipCache.from_recipe(recipe), np.random.default_rng(seed)
    rows = [(clip.frames, *make_row(s, clip, rng)) for s, clip in ((s, cache.get(s)) for s in samples)]
    return swap_gap(model, processor, rows, batch_size=8, fps=recipe.fps, names=[s.id for s in samples])


def main() -> None:
    """Parse the flags, train, evaluate, append one result line."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="data/synthetic", help="stvg-lab data synth --out data/synthetic")
    ap.add_argument("--root", default="bench/out/learning")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=None, help="default 2 x hidden")
    ap.add_argument("--vision-hidden", type=int, default=32)
    ap.add_argument("--format", default="paper")
    ap.add_argument("--think-target", default="grid")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=float, default=0.05)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--eval", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=None)
    ap.add_argument("--rope-theta", type=float, default=None, help="default tiny_cpu's (10); rounds 1-2 of LEARNING.md ran at 1e6")
    ap.add_argument("--model", default="tiny", help="start from this checkpoint (e.g. position_probe --save's final/) instead of a fresh stand-in")
    ap.add_argument("--aux-frame-boxes", action="store_true", help="recipe aux_frame_boxes=true (one 'box in frame k' row per sample)")
    ap.add_argument("--aux-frame-cells", action="store_true", help="recipe aux_frame_cells=true (one 'cell in frame k' row per sample)")
    ap.add_argument("--sft-loss", default="token", choices=("token", "row"), help="recipe sft_loss (row: each row's answer counts once)")
    ap.add_argument("--freeze-vision", action="store_true", help="recipe train_vision_tower=false")
    ap.add_argument("--prompt-order", default=None, choices=("video_first", "text_first"), help="recipe prompt_order (default: the start checkpoint's own)")
    ap.add_argument("--seed", type=int, default=0, help="recipe seed (data order, fresh stand-in's weights)")
    ap.add_argument("--save-every", type=int, default=10_000, help="recipe save_steps: keep checkpoint-<step>/ to probe later (position_probe --checkpoint)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from stvg_lab.analysis.reliance import grounding_rows, segment_gaps, video_reliance
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.evaluate import evaluate_model
    from stvg_lab.model import count_parameters, load_model
    from stvg_lab.processor import prompt_order
    from stvg_lab.train.dataset import frame_box_row, frame_cell_row
    from stvg_lab.train.logging import read_log
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.sft import run_sft

    size = dict(
        vocab="bpe", hidden_size=args.hidden, num_hidden_layers=args.layers,
        intermediate_size=args.intermediate or 2 * args.hidden, vision_hidden_size=args.vision_hidden,
        vision_intermediate_size=2 * args.vision_hidden,
    )
    size["rope_theta"] = args.rope_theta or load_recipe("tiny_cpu").tiny_model["rope_theta"]
    run_dir = Path(args.root) / args.name
    recipe = load_recipe(
        "tiny_cpu", data=args.data, output_dir=str(run_dir), model=args.model, tiny_model=size, answer_format=args.format,
        think_target=args.think_target, learning_rate=args.lr, warmup_ratio=args.warmup, max_steps=args.steps,
        per_device_batch_size=args.batch, save_steps=args.save_every, logging_steps=20, torch_threads=1,
        train_vision_tower=not args.freeze_vision, aux_frame_boxes=args.aux_frame_boxes,
        aux_frame_cells=args.aux_frame_cells, sft_loss=args.sft_loss, prompt_order=args.prompt_order, seed=args.seed,
    )
    t0 = time.time()
    final = run_sft(recipe)
    train_s = time.time() - t0
    model, processor = load_model(final)
    params = count_parameters(model)  # also right for --model checkpoints, which have no base/
    logs = read_log(run_dir)
    losses = [r["loss"] for r in logs if "loss" in r]
    accs = [r["mean_token_accuracy"] for r in logs if "mean_token_accuracy" in r]

    val = load_synthetic(args.data, "val")[: args.eval]
    train = load_synthetic(args.data, "train")
    t1 = time.time()
    report = evaluate_model(final, val, run_dir / "eval", fmt=args.format, train_samples=train,
                            max_new_tokens=args.max_new_tokens, progress=False, resume=False)
    m = report.metrics
    result = {
        "name": args.name, "params": params, "format": args.format, "think_target": args.think_target,
        "lr": args.lr, "steps": args.steps, "seed": args.seed, "model": args.model, "aux_frame_boxes": args.aux_frame_boxes,
        "aux_frame_cells": args.aux_frame_cells, "sft_loss": args.sft_loss, "prompt_order": prompt_order(processor.chat_template), "s_per_step": round(train_s / args.steps, 3),
        "final_loss": losses[-1] if losses else None, "final_token_acc": accs[-1] if accs else None,
        "parse_rate": 1 - m["parse_failure_rate"], "m_tIoU": m["pred"]["m_tIoU"], "m_vIoU": m["pred"]["m_vIoU"],
        "eval_s": round(time.time() - t1, 1),
        # own vs swapped-video answer loss on the same val clips (stvg_lab.analysis.reliance)
        "reliance": video_reliance(model, val, args.format, processor=processor, think_target=args.think_target),
        # the same per part of the answer: the span's digits, the first box, the later boxes
        "reliance_by_segment": {k: {key: round(v[key], 4) for key in ("own", "gap")} | {"n": v["n"]} for k, v in segment_gaps(
            model, processor, grounding_rows(val, args.format, think_target=args.think_target)).items()},
        # the same control on the auxiliary questions (asked of every run, trained on or not)
        "frame_box_reliance": aux_reliance(model, processor, val, recipe, frame_box_row),
        "frame_cell_reliance": aux_reliance(model, processor, val, recipe, frame_cell_row),
        "baselines": {k: {"m_tIoU": v["m_tIoU"], "m_vIoU": v["m_vIoU"]} for k, v in (m.get("baselines") or {}).items()},
    }
    with open(Path(args.root) / "results.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")
    logging.getLogger("probe").info("RESULT %s", json.dumps(result))


if __name__ == "__main__":
    main()
