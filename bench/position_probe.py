"""Position probe: can the CPU stand-in read *what* and *where* from its video tokens at all?

Run (one torch thread, ~0.16-0.2 s/step; LEARNING.md rounds 3 and 4 have the tables these commands made):

    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name colour --task colour --steps 300 --rope-theta 1e6
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name cell_t10 --task cell --steps 1200
    # round 16: a wider stand-in (--size: fields of tiny_cpu's tiny_model), then the two-object question
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name pre_dark_w256 --task cell --light 0 --steps 1500 --every 250 --size hidden_size=256 --size intermediate_size=512 --size vision_hidden_size=64 --size vision_intermediate_size=128 --save
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name pre_dark --task cell --light 0 --steps 1500 --every 250 --save
    # round 4, curriculum stages from pre_dark (--init trains on from a checkpoint):
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name d1_from_pre --light 0 --distractors 1 --init bench/out/position/pre_dark/final --steps 2000 --every 250 --save
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name move_from_pre --light 0 --move --init bench/out/position/pre_dark/final --steps 1500 --every 250 --save
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name bench_from_pre --data data/synthetic --init bench/out/position/pre_dark/final --steps 2500 --every 250 --save
    # round 17: binding without position ("What size is the red object?"), then the cell of the named object from there
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name size_d1_from_shipped --task size --appearance benchmark --distractors 1 --text-first --init stvg_lab/assets/checkpoints/tiny_cpu_sft --steps 3000 --every 250 --save
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name cell_d1_from_size --task cell --appearance benchmark --distractors 1 --text-first --init bench/out/position/size_d1_6k/final --steps 3000 --every 250 --save
    # round 18: the same binding stage with grounding SFT rows in every batch, so the stage keeps the grounding answer
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name size_keep_from_shipped --task size --appearance benchmark --distractors 1 --text-first --init stvg_lab/assets/checkpoints/tiny_cpu_sft --keep-grounding data/synthetic --steps 3000 --every 500 --save
    # score only: did a later stage keep the reader?
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name after_sft --task cell --light 0 --checkpoint bench/out/learning/P_dark/final
    # round 5: the sentence before the video (one text-to-video distance), and which part a later stage changed
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name solo12k_sent_tf_from_pre --data data/solo12k --text-first --init bench/out/position/pre_dark/final --steps 1500 --every 250 --save
    OMP_NUM_THREADS=1 .venv/bin/python bench/position_probe.py --name tp --data data/solo12k --no-sentence --checkpoint bench/out/learning/SN_reader_cells/final --transplant-from bench/out/position/solo12k_nosent_from_pre/final --parts vit merger attention mlp

The full task mixes reading the video with writing ~230 tokens; this strips it to one scene
(8 frames of 112x112, one 24-px square, optional distractors) and a 1-3 token answer, so a run takes
minutes and the answer can only come from the pixels:

* ``colour``: "What colour is the square?" -> ``red`` (content; no position needed);
* ``shape`` (``--appearance benchmark``): "What shape is the red object?" -> ``circle``; with
  ``--distractors`` (another colour *and* another shape) the colour word must pick the object,
  so this is binding without reading position (chance ~1/2 between the two objects' shapes);
* ``size`` / ``colour_by_size`` (``--appearance benchmark``): "What size is the red object?" ->
  ``small``; "What colour is the large object?" -> ``red`` (distractors differ in colour and size):
  which attribute can name the object, which can be read off it;
* ``half``: "Is the red square on the left or the right?" -> ``left`` (1 bit of position);
* ``cell``: "In which cell of the 4x4 grid is the red square?" -> ``12`` (row, column of its centre
  on the 28-px token grid: 4 bits of position). With ``--move`` the square slides between two
  drawn places and the question names a frame ("... in frame 5 of 0-7?").

A '+'-joined ``--task`` (``size+cell``) mixes questions: each training scene's task is drawn at random,
and the held-out scenes take turns (scene i asks ``tasks[i % n]``).

``--data DIR`` asks the cell question of a synthetic benchmark's own clips instead
(``stvg_lab.train.dataset.frame_cell_row``, the recipe's ``aux_frame_cells`` question: the
sentence, then "In which cell of the 4x4 grid is it in frame k of 0-7?"; train split for training,
val for the held-out scenes).

``--keep-grounding DIR`` also trains, in every step, on ``--keep-batch`` grounding SFT rows of DIR's
train split (``tiny_cpu``'s: the sentence's prompt and the compact answer, ``stvg_lab.train.dataset.sft_target``),
the loss being ``(1 - share) * probe + share * grounding`` (``--keep-share``; each the token mean of its own
rows, so the 1-3 token probe answers are not drowned by ~230-token ones). Why (LEARNING.md round 17): a
probe stage alone overwrites the grounding answer, which 5,000 SFT steps after it do not bring back. Each
logged line then also has ``ground_own`` / ``ground_swapped`` / ``ground_gap``: the grounding rows'
teacher-forced loss on 16 val clips with their own and the next clip's frames. ``--keep-share 1`` is
grounding SFT alone in this loop (no probe forward): the control. A ``--save``d probe checkpoint has no
``recipe.yaml``, so ``stvg-lab evaluate`` needs ``--format compact`` to score its grounding answers.

``--text-first`` asks with the question before the video (our chat template's text-first order,
saved with ``--save``; a loaded checkpoint otherwise keeps its own order): the stand-in reads
positions only at the text-to-video distance it learned them at, and in Qwen's order the
sentence's length moves that distance (LEARNING.md round 5). ``--transplant-from R --parts ...``
(with ``--checkpoint``) also scores the checkpoint with some parts
(``stvg_lab.model_parts.PARTS``) taken from R: which part did a later stage change?

Drawn scenes are lit with the benchmark's own ``apply_lighting`` (``--light`` is its amplitude on R
and G; 64 is ``SynthConfig``'s default). The model is ``build_tiny_model`` with ``tiny_cpu``'s
``tiny_model`` (rope_theta 10 unless ``--rope-theta`` says otherwise; 1e6 is Qwen2.5-VL's; ``--size`` changes
its other fields), or
``--init``'s checkpoint, trained by a plain AdamW loop on ``model(**build_model_inputs(...)).loss``
(the same forward SFT uses). Every ``--every`` steps it writes one JSON line: the teacher-forced
loss on 64 held-out scenes with their own frames and with the next scene's frames (``gap`` =
swapped - own: ``stvg_lab.analysis.reliance.swap_gap`` in batches of 16; until round 3 the decoy
was the next scene within each batch of 16, now the next one of the 64) and the greedy
exact-match rate on 32 of them (chance: 1/4 colours, 1/2 halves, 1/16 cells). Lines go to stdout
and ``bench/out/position/<name>.jsonl``.
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

from stvg_lab.video import PATCH_FACTOR as CELL  # one Qwen2.5-VL video token per 28-px cell (patch 14 x merge 2)

COLOURS = ("red", "green", "blue", "yellow")  # four well-separated entries of the benchmark's palette
SIZE, SQUARE = 112, 24  # frame side, square side
TASKS = ("colour", "shape", "size", "colour_by_size", "half", "cell")


def scene(
    rng: np.random.Generator, task: str, light: float, distractors: int, move: bool = False, appearance: str = "squares"
) -> tuple[np.ndarray, str, str]:
    """One scene: ``(frames (8, 112, 112, 3) uint8, question, answer)``.

    Static, unless ``move``: then the target slides in a straight line from its drawn place to a
    second drawn place over the 8 frames (distractors stay put) and the cell question asks about a
    random frame k, as the benchmark's questions do. ``appearance="squares"``: 24-px squares in
    four colours; ``"benchmark"``: the benchmark's eight colours, five shapes and two size ranges
    (``SynthConfig``'s small 16-20 / large 30-40 px), drawn with its own ``shape_mask``.
    """
    from stvg_lab.data.synth import PALETTE, SHAPES, SynthConfig, apply_lighting, shape_mask

    bench = appearance == "benchmark"
    palette = tuple(PALETTE) if bench else COLOURS

    def look() -> tuple[str, int, str]:  # (shape, side in px, size word); squares mode draws nothing from rng
        if not bench:
            return "square", SQUARE, "large"
        shape = SHAPES[rng.integers(len(SHAPES))]
        size = "large" if rng.random() < 0.5 else "small"
        lo, hi = SynthConfig.large_px if size == "large" else SynthConfig.small_px  # the dataclass defaults
        return shape, int(rng.integers(lo, hi + 1)), size

    def paint(t: slice | int, x: int, y: int, shape: str, px: int, colour: str) -> None:
        frames[t, y : y + px, x : x + px][..., shape_mask(shape, px), :] = PALETTE[colour]

    frames = np.zeros((8, SIZE, SIZE, 3), np.uint8) + np.asarray((48, 48, 56), np.uint8)
    colour = palette[rng.integers(len(palette))]
    shape, px, size = look()
    x, y = (int(v) for v in rng.integers(0, SIZE - px, 2))
    others = [c for c in palette if c != colour]
    for _ in range(distractors):  # a different colour, not overlapping the target
        d_shape, d_px, d_size = look()
        # the binding questions need the two objects to differ in what is asked and in what names the object
        while (task == "shape" and d_shape == shape) or (task in ("size", "colour_by_size") and d_size == size):
            d_shape, d_px, d_size = look()
        for _ in range(100):
            x2, y2 = (int(v) for v in rng.integers(0, SIZE - d_px, 2))
            if abs(x2 - x) > max(px, d_px) or abs(y2 - y) > max(px, d_px):
                paint(slice(None), x2, y2, d_shape, d_px, others[rng.integers(len(others))])
                break
    k, where = None, ""
    if move:
        xe, ye = (int(v) for v in rng.integers(0, SIZE - px, 2))
        path = [(round(x + (xe - x) * t / 7), round(y + (ye - y) * t / 7)) for t in range(8)]
        for t, (xt, yt) in enumerate(path):
            paint(t, xt, yt, shape, px, colour)
        k = int(rng.integers(8))
        (x, y), where = path[k], f" in frame {k} of 0-7"
    else:
        paint(slice(None), x, y, shape, px, colour)
    if light:
        frames = apply_lighting(frames, (light, light, 0.0))  # no time ramp
    cx, cy = x + px / 2, y + px / 2
    name = f"{colour} {shape}"
    if task == "colour":
        return frames, f"What colour is the {shape}?", colour
    if task == "shape":  # binding without position: the colour word picks the object, its shape is the answer
        return frames, f"What shape is the {colour} object?", shape
    if task == "size":  # the same with the size (which the grounding SFT reads well) as the answer
        return frames, f"What size is the {colour} object?", size
    if task == "colour_by_size":  # the other way round: the size word picks the object, its colour is the answer
        return frames, f"What colour is the {size} object?", colour
    if task == "half":
        return frames, f"Is the {name} on the left or the right?", "left" if cx < SIZE / 2 else "right"
    if task == "cell":
        return frames, f"In which cell of the 4x4 grid is the {name}{where}?", f"{int(cy // CELL)}{int(cx // CELL)}"
    raise ValueError(f"--task must be {', '.join(TASKS[:-1])} or {TASKS[-1]}, got {task!r}")


def grounding_rows(data: str, n_held_out: int = 16) -> tuple:
    """``(draw, held_out)``: a drawer of ``data``'s train grounding rows and ``n_held_out`` val rows, each ``(frames, prompt, answer)``.

    The rows ``tiny_cpu``'s SFT trains on (its fps, frame size, compact answer with grid think boxes), so a
    probe stage with them in its batches keeps the answer the shipped stand-in writes.
    """
    from stvg_lab.analysis.reliance import grounding_rows as rows_of
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.train.dataset import ClipCache
    from stvg_lab.train.recipe import load_recipe

    recipe = load_recipe("tiny_cpu")
    cache = ClipCache.from_recipe(recipe)  # one cache: each clip is decoded once for the whole run

    def rows(samples) -> list[tuple[np.ndarray, str, str]]:
        return rows_of(samples, recipe.answer_format, think_target=recipe.think_target, cache=cache)

    train = load_synthetic(data, "train")
    return (lambda rng: rows([train[int(rng.integers(len(train)))]])[0]), rows(load_synthetic(data, "val")[:n_held_out])


def main() -> None:
    """Parse the flags, build the stand-in, train, and log held-out loss, gap and exact match."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--task", default="cell", help="colour, shape, size, colour_by_size, half or cell; '+'-joined (size+cell) mixes them, each scene's task drawn at random")
    ap.add_argument("--light", type=float, default=64.0, help="apply_lighting amplitude on R (x) and G (y)")
    ap.add_argument("--distractors", type=int, default=0)
    ap.add_argument("--move", action="store_true", help="the target moves; the cell question names a frame")
    ap.add_argument("--appearance", default="squares", choices=("squares", "benchmark"), help="drawn objects: 24-px squares in 4 colours, or the benchmark's colours, shapes and sizes")
    ap.add_argument("--data", default=None, help="ask the cell question (frame_cell_row) of this synthetic dataset's clips (train; held out: val) instead of drawn scenes")
    ap.add_argument("--no-sentence", action="store_true", help="with --data: drop the sentence, ask only 'In which cell ... is the object in frame k' (its motion words give a prior)")
    ap.add_argument("--text-first", action="store_true", help="ask with the question before the video (stvg_chat_template(text_first=True); Qwen's order is video first): the answer then sits at one mRoPE offset from the video whatever the sentence's length. Without it a loaded checkpoint keeps its own order")
    ap.add_argument("--rope-theta", type=float, default=None, help="override tiny_cpu's rope_theta (10); 1e6 is Qwen2.5-VL's")
    ap.add_argument("--size", action="append", default=[], metavar="KEY=VALUE",
                    help="override a field of tiny_cpu's tiny_model for a fresh stand-in, e.g. --size hidden_size=256 --size vision_hidden_size=64")
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--root", default="bench/out/position")
    ap.add_argument("--init", default=None, help="train from this checkpoint (e.g. an earlier probe's --save) instead of a fresh stand-in: a curriculum stage")
    ap.add_argument("--checkpoint", default=None, help="only score this checkpoint (e.g. an SFT run's final/) on the task's held-out scenes")
    ap.add_argument("--transplant-from", default=None, help="with --checkpoint: also score it with --parts taken from this checkpoint (which part did a later stage change?)")
    ap.add_argument("--parts", nargs="+", default=(), help="with --transplant-from: one scoring per entry, each a '+'-joined set of stvg_lab.model_parts.PARTS (e.g. vit+merger attention)")
    ap.add_argument("--keep-grounding", default=None, metavar="DIR", help="also train on grounding SFT rows of this synthetic dataset's train split in every step (tiny_cpu's prompt and answer format)")
    ap.add_argument("--keep-batch", type=int, default=4, help="with --keep-grounding: grounding rows per step")
    ap.add_argument("--keep-share", type=float, default=0.5, help="with --keep-grounding: the grounding loss's weight; the probe's is 1 minus it")
    ap.add_argument("--save", action="store_true", help="save the trained model to <root>/<name>/final (a start for learnability_probe --model)")
    args = ap.parse_args()
    tasks = args.task.split("+")
    if unknown := [t for t in tasks if t not in TASKS]:
        ap.error(f"--task: {', '.join(map(repr, unknown))} not among {', '.join(TASKS)}")
    needs = [t for t in tasks if t in ("shape", "size", "colour_by_size")]
    if needs and args.appearance != "benchmark":
        ap.error(f"--task {'+'.join(needs)} needs --appearance benchmark (squares have one shape and one size)")
    if args.data and args.task != "cell":
        ap.error("--data asks the cell question only; leave --task at cell")
    if args.no_sentence and not args.data:
        ap.error("--no-sentence drops the sentence of --data's clips; drawn scenes have none")
    if args.keep_grounding and args.checkpoint:
        ap.error("--keep-grounding trains; --checkpoint only scores")
    if not 0.0 <= args.keep_share <= 1.0 or args.keep_batch < 1:
        ap.error("--keep-share must lie in [0, 1] and --keep-batch be at least 1")
    if bool(args.transplant_from) != bool(args.parts) or (args.transplant_from and not args.checkpoint):
        ap.error("--transplant-from and --parts go together, with --checkpoint")

    import torch

    from stvg_lab.analysis.reliance import swap_gap
    from stvg_lab.model import build_model_inputs, build_tiny_model, load_model
    from stvg_lab.processor import prompt_order, stvg_chat_template
    from stvg_lab.train.recipe import load_recipe, parse_overrides

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    run = Path(args.root) / args.name
    size = {**load_recipe("tiny_cpu").tiny_model, **parse_overrides(args.size)}
    theta = args.rope_theta or size["rope_theta"]
    if args.checkpoint or args.init:  # score only (did a later stage keep what this probe measures?) or go on training
        model, processor = load_model(args.checkpoint or args.init)
    else:
        model, processor = load_model(build_tiny_model(run / "base", seed=args.seed, **{**size, "rope_theta": theta}))
    theta = model.config.get_text_config().rope_parameters["rope_theta"]  # a loaded checkpoint keeps its own
    if args.text_first:  # the template is saved with --save, so a later stage asks in the same order
        processor.chat_template = stvg_chat_template(text_first=True)
    text_first = prompt_order(processor.chat_template) == "text_first"
    if args.data:  # the benchmark's own frames: lit (unless the dataset is flat), moving, 0-2 distractors
        from stvg_lab.data.synth import load_synthetic
        from stvg_lab.train.dataset import ClipCache, frame_cell_row

        def clip_scene(sample, clip, rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
            question, answer = frame_cell_row(sample, clip, rng)  # the recipe's aux_frame_cells question
            if args.no_sentence:  # only the question line: nothing but the pixels says where the object is
                question = question.split("\n", 1)[1].replace(" is it in ", " is the object in ")
            return clip.frames, question, answer

        cache, train = ClipCache.from_recipe(load_recipe("tiny_cpu")), load_synthetic(args.data, "train")
        val = load_synthetic(args.data, "val")[:64]
        held_out = [clip_scene(s, cache.get(s), np.random.default_rng(10_000 + i)) for i, s in enumerate(val)]

        def draw(rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
            s = train[int(rng.integers(len(train)))]
            return clip_scene(s, cache.get(s), rng)
    else:
        # a mixed --task takes turns over the held-out scenes, so each task has its share of them
        held_out = [scene(np.random.default_rng(10_000 + i), tasks[i % len(tasks)], args.light, args.distractors, args.move, args.appearance) for i in range(64)]

        def draw(rng: np.random.Generator) -> tuple[np.ndarray, str, str]:
            task = tasks[0] if len(tasks) == 1 else tasks[rng.integers(len(tasks))]  # one task draws nothing more: its scenes stay as they were
            return scene(rng, task, args.light, args.distractors, args.move, args.appearance)

    if args.keep_grounding:
        draw_grounding, ground_held_out = grounding_rows(args.keep_grounding)

    @torch.no_grad()
    def evaluate() -> dict:
        r = swap_gap(model, processor, held_out, batch_size=16)  # each question also gets the next scene's frames
        if args.keep_grounding:  # is the grounding answer kept, and does it still read the frames?
            g = swap_gap(model, processor, ground_held_out, batch_size=8)
            r = {**r, **{f"ground_{k}": g[k] for k in ("own", "swapped", "gap")}}
        model.eval()
        hits = 0
        for frames, question, answer in held_out[:32]:
            x = build_model_inputs(processor, frames, question)
            out = model.generate(**x, max_new_tokens=8, do_sample=False)
            hits += processor.tokenizer.decode(out[0, x["input_ids"].shape[1] :], skip_special_tokens=True).strip() == answer
        model.train()
        return {**{k: round(v, 4) for k, v in r.items() if k.endswith(("own", "swapped", "gap"))}, "exact": hits / min(32, len(held_out))}

    if args.checkpoint:
        head = {"name": args.name, "checkpoint": args.checkpoint, "data": args.data, "no_sentence": args.no_sentence,
                "text_first": text_first, "task": args.task, "light": args.light, "distractors": args.distractors}
        print(json.dumps({**head, **evaluate()}))
        if args.transplant_from:  # the checkpoint with some parts put back from another one
            from stvg_lab.model_parts import check_parts, transplant

            donor, _ = load_model(args.transplant_from)
            own = {k: v.clone() for k, v in model.state_dict().items()}
            for entry in args.parts:
                parts = check_parts(entry.split("+"), "--parts")
                transplant(model, donor, parts)
                print(json.dumps({**head, "transplant_from": args.transplant_from, "parts": parts, **evaluate()}), flush=True)
                model.load_state_dict(own)
        return
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng = np.random.default_rng(args.seed)
    ground_rng = np.random.default_rng([args.seed, 1])  # its own stream: the probe's scenes are those of a run without --keep-grounding
    run.mkdir(parents=True, exist_ok=True)
    log = (run.parent / f"{args.name}.jsonl").open("w", encoding="utf-8")
    model.train()
    t0 = time.time()
    for step in range(1, args.steps + 1):
        loss = 0.0
        if not args.keep_grounding or args.keep_share < 1.0:  # --keep-share 1 is grounding SFT alone: no probe forward
            batch = [draw(rng) for _ in range(args.batch)]
            loss = model(**build_model_inputs(processor, *(list(col) for col in zip(*batch)))).loss
        if args.keep_grounding:  # the two token means weighed, not one mean over all tokens
            rows = [draw_grounding(ground_rng) for _ in range(args.keep_batch)]
            ground = model(**build_model_inputs(processor, *(list(col) for col in zip(*rows)))).loss
            loss = (1.0 - args.keep_share) * loss + args.keep_share * ground
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0 or step == args.steps:
            row = {"name": args.name, "init": args.init, "data": args.data, "keep_grounding": args.keep_grounding, "keep_share": args.keep_share if args.keep_grounding else None, "no_sentence": args.no_sentence, "text_first": text_first, "task": args.task, "light": args.light, "rope_theta": theta,
                   "distractors": args.distractors, "move": args.move, "appearance": args.appearance, "step": step, "train_loss": round(loss.item(), 4),
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
