"""Position probe: can the CPU stand-in read *what* and *where* from its video tokens at all?

Run (one torch thread, ~0.18 s/step; LEARNING.md "Round 3" has the table these commands made):

    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name colour --task colour --steps 300 --rope-theta 1e6
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name cell_t1e6 --task cell --steps 1200 --rope-theta 1e6
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name cell_t10 --task cell --steps 1200
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name pre_dark --task cell --light 0 --steps 1500 --save
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name after_sft --task cell --light 0 --checkpoint bench/out/learning/P_dark/final

The full task mixes reading the video with writing ~230 tokens; this strips it to one static scene
(8 frames of 112x112, one 24-px square, optional distractors) and a 1-3 token answer, so a run takes
minutes and the answer can only come from the pixels:

* ``colour``: "What colour is the square?" -> ``red`` (content; no position needed);
* ``half``: "Is the red square on the left or the right?" -> ``left`` (1 bit of position);
* ``cell``: "In which cell of the 4x4 grid is the red square?" -> ``12`` (row, column of its centre
  on the 28-px token grid: 4 bits of position).

The scene is lit with the benchmark's own ``apply_lighting`` (``--light`` is its amplitude on R and
G; 64 is ``SynthConfig``'s default). The model is ``build_tiny_model`` with ``tiny_cpu``'s
``tiny_model`` (rope_theta 10 unless ``--rope-theta`` says otherwise; 1e6 is Qwen2.5-VL's), trained
by a plain AdamW loop on ``model(**build_model_inputs(...)).loss`` (the same forward SFT
uses). Every ``--every`` steps it writes one JSON line: the teacher-forced loss on 64 held-out scenes
with their own frames and with the next scene's frames (``gap`` = swapped - own, the reliance control
of ``stvg_lab.analysis.reliance``) and the greedy exact-match rate on 32 of them (chance: 1/4 colours,
1/2 halves, 1/16 cells). Lines go to stdout and ``bench/out/position/<name>.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

COLOURS = ("red", "green", "blue", "yellow")  # four well-separated entries of the benchmark's palette
SIZE, SQUARE, CELL = 112, 24, 28  # frame side, square side, Qwen2.5-VL token (patch 14 x merge 2)


def scene(rng: np.random.Generator, task: str, light: float, distractors: int) -> tuple[np.ndarray, str, str]:
    """One static scene: ``(frames (8, 112, 112, 3) uint8, question, answer)``."""
    from stvg_lab.data.synth import PALETTE, apply_lighting

    frames = np.zeros((8, SIZE, SIZE, 3), np.uint8) + np.asarray((48, 48, 56), np.uint8)
    colour = COLOURS[rng.integers(len(COLOURS))]
    x, y = (int(v) for v in rng.integers(0, SIZE - SQUARE, 2))
    others = [c for c in COLOURS if c != colour]
    for _ in range(distractors):  # a different colour, not overlapping the target
        for _ in range(100):
            x2, y2 = (int(v) for v in rng.integers(0, SIZE - SQUARE, 2))
            if abs(x2 - x) > SQUARE or abs(y2 - y) > SQUARE:
                frames[:, y2 : y2 + SQUARE, x2 : x2 + SQUARE] = PALETTE[others[rng.integers(len(others))]]
                break
    frames[:, y : y + SQUARE, x : x + SQUARE] = PALETTE[colour]
    if light:
        frames = apply_lighting(frames, (light, light, 0.0))  # static scene: no time ramp
    cx, cy = x + SQUARE / 2, y + SQUARE / 2
    if task == "colour":
        return frames, "What colour is the square?", colour
    if task == "half":
        return frames, f"Is the {colour} square on the left or the right?", "left" if cx < SIZE / 2 else "right"
    if task == "cell":
        return frames, f"In which cell of the 4x4 grid is the {colour} square?", f"{int(cy // CELL)}{int(cx // CELL)}"
    raise ValueError(f"--task must be colour, half or cell, got {task!r}")


def main() -> None:
    """Parse the flags, build the stand-in, train, and log held-out loss, gap and exact match."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--task", default="cell", choices=("colour", "half", "cell"))
    ap.add_argument("--light", type=float, default=64.0, help="apply_lighting amplitude on R (x) and G (y)")
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--rope-theta", type=float, default=None, help="override tiny_cpu's rope_theta (10); 1e6 is Qwen2.5-VL's")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default="bench/out/position")
    ap.add_argument("--checkpoint", default=None, help="only score this checkpoint (e.g. an SFT run's final/) on the task's held-out scenes")
    ap.add_argument("--save", action="store_true", help="save the trained model to <root>/<name>/final (a start for learnability_probe --model)")
    args = ap.parse_args()

    import torch

    from stvg_lab.model import build_model_inputs, build_tiny_model, load_model
    from stvg_lab.train.recipe import load_recipe

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    run = Path(args.root) / args.name
    size = load_recipe("tiny_cpu").tiny_model
    theta = args.rope_theta or size["rope_theta"]
    if args.checkpoint:  # score only: did a later training stage keep what this probe measures?
        model, processor = load_model(args.checkpoint)
    else:
        model, processor = load_model(build_tiny_model(run / "base", seed=args.seed, **{**size, "rope_theta": theta}))
    held_out = [scene(np.random.default_rng(10_000 + i), args.task, args.light, args.distractors) for i in range(64)]

    def inputs(items, swap: bool = False) -> dict:
        frames = [f for f, _, _ in items]
        frames = frames[1:] + frames[:1] if swap else frames  # each question gets the next scene's frames
        return build_model_inputs(processor, frames, [q for _, q, _ in items], [a for _, _, a in items])

    @torch.no_grad()
    def evaluate() -> dict:
        model.eval()
        own = sum(float(model(**inputs(held_out[i : i + 16])).loss) for i in range(0, 64, 16)) / 4
        swapped = sum(float(model(**inputs(held_out[i : i + 16], swap=True)).loss) for i in range(0, 64, 16)) / 4
        hits = 0
        for frames, question, answer in held_out[:32]:
            x = build_model_inputs(processor, frames, question)
            out = model.generate(**x, max_new_tokens=8, do_sample=False)
            hits += processor.tokenizer.decode(out[0, x["input_ids"].shape[1] :], skip_special_tokens=True).strip() == answer
        model.train()
        return {"own": round(own, 4), "swapped": round(swapped, 4), "gap": round(swapped - own, 4), "exact": hits / 32}

    if args.checkpoint:
        print(json.dumps({"name": args.name, "checkpoint": args.checkpoint, "task": args.task, "light": args.light,
                          "distractors": args.distractors, **evaluate()}))
        return
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    run.mkdir(parents=True, exist_ok=True)
    log = (run.parent / f"{args.name}.jsonl").open("w", encoding="utf-8")
    model.train()
    t0 = time.time()
    for step in range(1, args.steps + 1):
        loss = model(**inputs([scene(rng, args.task, args.light, args.distractors) for _ in range(args.batch)])).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            row = {"name": args.name, "task": args.task, "light": args.light, "rope_theta": theta,
                   "distractors": args.distractors, "step": step, "train_loss": round(loss.item(), 4),
                   **evaluate(), "s": round(time.time() - t0)}
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    log.close()
    if args.save:  # a plain checkpoint: load_model and SFT (recipe model=<path>) take it
        model.save_pretrained(run / "final")
        processor.save_pretrained(run / "final")


if __name__ == "__main__":
    main()
