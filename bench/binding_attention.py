"""Binding readout: does the stand-in single out the object its sentence names, and where?

Run (one torch thread, ~1 min a checkpoint; LEARNING.md round 17 has the tables):

    OMP_NUM_THREADS=1 .venv/bin/python bench/binding_attention.py --task size \
        shipped=stvg_lab/assets/checkpoints/tiny_cpu_sft size6k=bench/out/position/size_d1_6k/final

On ``position_probe.py``'s drawn two-object scenes (``--task``, one distractor of another colour,
benchmark look, lit at 64, text first as the probes ask), two readouts per LM layer:

* **target-ness**: a ridge readout of "is this the named object?" from the object tokens' own hidden
  states (``Qwen2_5_VL``'s ``output_hidden_states``; layer 0 is the embedding, i.e. the merger's output,
  which has not seen the text). The two objects are drawn alike (random colours, the same
  generator), so at layer 0 this is chance (0.5); above it, only if the video tokens have read the
  sentence (text first: they can attend to it) and marked the named object.
* **answer attention**: at the position that predicts the answer's first token, the share of
  attention mass on the named object's tokens out of both objects' (per head, mean over scenes;
  0.5 = no preference; the ratio of the mean masses, shown where the head puts >= 0.05 of its
  attention on the two objects), and that head's mass on the two objects together. A head far from 0.5
  selects an object by the word: above, the named one; below, the other (in the size question the
  other's size answers it too: it is always the opposite).

It also asks greedily and counts whose answer it gives: the named object's, the other object's
(its cell, colour, shape, or the other size), or neither (a model that reads both objects and picks
by coin scores 0.5 / 0.5 / 0).

Object tokens: a video token (one 28x28 cell of one temporal patch) belongs to the object with more
pixels in its cell; the readout takes each object's fullest cell in every temporal patch. Object
pixels come from the same scene drawn unlit (the generator's draws do not depend on the light).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from stvg_lab.video import PATCH_FACTOR as CELL  # one video token per 28-px cell (patch 14 x merge 2)

HERE = Path(__file__).resolve().parent
LIGHT = 64.0


def _sibling(name: str):
    """Another bench script as a module (bench/ is scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def colour_mask(frame: np.ndarray, colour: str) -> np.ndarray:
    """The pixels drawn in a palette colour in an unlit frame: ``(H, W, 3) -> (H, W)`` bool."""
    from stvg_lab.data.synth import PALETTE

    return (frame == np.asarray(PALETTE[colour], np.uint8)).all(-1)


def cell_owners(frame: np.ndarray, target: str, other: str) -> tuple[np.ndarray, np.ndarray]:
    """Pixels per 28-px cell of the target and the other object in an unlit frame: ``(H, W, 3) -> 2 x (H/28, W/28)``."""

    def per_cell(colour: str) -> np.ndarray:
        mask = colour_mask(frame, colour)
        h, w = mask.shape[0] // CELL, mask.shape[1] // CELL
        return mask[: h * CELL, : w * CELL].reshape(h, CELL, w, CELL).sum((1, 3))

    return per_cell(target), per_cell(other)


def named_colours(question: str, answer: str, drawn: list[str]) -> tuple[str, str]:
    """``(target, other)`` colour names of a two-object scene: the named object's colour is in the question or is the answer."""
    target = [c for c in drawn if f" {c} " in f" {question} " or c == answer]
    if len(target) != 1 or len(drawn) != 2:
        raise ValueError(f"want one named colour among two drawn objects, got {target} of {drawn} for {question!r}")
    return target[0], next(c for c in drawn if c != target[0])


def other_answer(task: str, unlit: np.ndarray, other: str, answer: str) -> str:
    """What the question would be answered with for the other object, read off an unlit frame ``(H, W, 3)``."""
    from stvg_lab.data.synth import SHAPES, shape_mask

    if task == "size":  # the distractor always has the other size
        return "small" if answer == "large" else "large"
    if task == "colour_by_size":
        return other
    mask = colour_mask(unlit, other)
    ys, xs = np.nonzero(mask)
    if task == "cell":  # its box centre's cell, as position_probe.scene answers for the target
        return f"{int((ys.min() + ys.max() + 1) / 2 // CELL)}{int((xs.min() + xs.max() + 1) / 2 // CELL)}"
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return next(s for s in SHAPES if crop.shape[0] == crop.shape[1] and np.array_equal(crop, shape_mask(s, crop.shape[0])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT")
    ap.add_argument("--task", default="size", choices=("size", "shape", "colour_by_size", "cell"))
    ap.add_argument("--n", type=int, default=200, help="scenes to fit the readout on, and as many to test it on")
    args = ap.parse_args()

    import torch

    from stvg_lab.data.synth import PALETTE
    from stvg_lab.model import build_model_inputs, load_model
    from stvg_lab.processor import stvg_chat_template

    probe, readout = _sibling("position_probe"), _sibling("vision_readout")
    torch.set_num_threads(1)
    scenes = []  # (frames, question, answer, target's pixels per cell (h, w), other's, the other object's answer)
    for i in range(2 * args.n):
        seed = 20_000 + i  # apart from the probes' training draws and their 10_000+ held-out scenes
        frames, q, a = probe.scene(np.random.default_rng(seed), args.task, LIGHT, 1, appearance="benchmark")
        unlit, _, _ = probe.scene(np.random.default_rng(seed), args.task, 0.0, 1, appearance="benchmark")
        drawn = [c for c in PALETTE if colour_mask(unlit[0], c).any()]
        if len(drawn) != 2:  # the distractor found no free place: not a two-object scene
            continue
        target, other = named_colours(q, a, drawn)
        scenes.append((frames, q, a, *cell_owners(unlit[0], target, other), other_answer(args.task, unlit[0], other, a)))
    print(f"{len(scenes)} two-object scenes of {2 * args.n} (task {args.task})")
    half = len(scenes) // 2

    for spec in args.models:
        name, path = spec.split("=", 1)
        model, processor = load_model(path, attn_implementation="eager")
        processor.chat_template = stvg_chat_template(text_first=True)
        model.eval()
        video_id = model.config.video_token_id
        feats, labels, on_named, on_both, picks = [], [], [], [], []  # per scene: (L+1, 2T', D) object-token states, their 1/0 labels; (L, heads) masses; the greedy pick
        with torch.no_grad():
            for frames, q, a, t_px, o_px, decoy in scenes:
                x = build_model_inputs(processor, frames, q, a)
                out = model(**x, output_hidden_states=True, output_attentions=True)
                pos = (x["input_ids"][0] == video_id).nonzero()[:, 0]  # video tokens, in (t, h, w) order
                tg, hh, ww = (int(v) for v in x["video_grid_thw"][0])
                hh, ww = hh // 2, ww // 2  # merged 2x2: one token per 28-px cell
                assert len(pos) == tg * hh * ww and t_px.shape == (hh, ww), (len(pos), t_px.shape)
                owner_t = (t_px > o_px).reshape(-1)
                owner_o = (o_px > t_px).reshape(-1)
                best = [int(t_px.argmax()), int(o_px.argmax())]  # each object's fullest cell
                idx = [pos[t * hh * ww + c] for c in best for t in range(tg)]
                hidden = torch.stack(out.hidden_states)[:, 0]  # (L+1, seq, D)
                feats.append(hidden[:, idx].numpy())
                labels.append(np.repeat([1, 0], tg))
                q_pos = int((x["labels"][0] != -100).nonzero()[0, 0]) - 1  # predicts the answer's first token
                att = torch.stack(out.attentions)[:, 0, :, q_pos]  # (L, heads, seq)
                on_video = att[..., pos].reshape(att.shape[0], att.shape[1], tg, hh * ww).sum(2)  # (L, heads, cells)
                mt = on_video[..., torch.from_numpy(owner_t)].sum(-1)
                mo = on_video[..., torch.from_numpy(owner_o)].sum(-1)
                on_named.append(mt.numpy())
                on_both.append((mt + mo).numpy())
                g = build_model_inputs(processor, frames, q)  # greedy: which object does the answer describe?
                new = model.generate(**g, max_new_tokens=4, do_sample=False)[0, g["input_ids"].shape[1] :]
                said = processor.tokenizer.decode(new, skip_special_tokens=True).strip()
                picks.append("named" if said == a else "other" if said == decoy else "neither")
        f = np.stack(feats)  # (S, L+1, 2T', D)
        y = np.stack(labels)
        ones = np.ones(f.shape[:3] + (1,))
        f = np.concatenate([f, ones], -1)
        acc = []
        for layer in range(f.shape[1]):
            x_tr, x_te = f[:half, layer].reshape(-1, f.shape[-1]), f[half:, layer].reshape(-1, f.shape[-1])
            acc.append(readout.classify_accuracy(x_tr, y[:half].reshape(-1), x_te, y[half:].reshape(-1), 2))
        m = np.stack(on_both).mean(0)  # (L, heads)
        s = np.where(m >= 0.05, np.stack(on_named).mean(0) / np.maximum(m, 1e-9), np.nan)  # ratio of means; a head that hardly looks has none
        print(f"\n{name} ({path})")
        print("| layer | " + " | ".join(str(k) for k in range(f.shape[1])) + " |")
        print("|---|" + "---:|" * f.shape[1])
        print("| target-ness readout (test) | " + " | ".join(f"{v:.2f}" for v in acc) + " |")
        print("| answer attention, named share per head | – | " + " | ".join(" ".join("–" if np.isnan(v) else f"{v:.2f}" for v in row) for row in s) + " |")
        print("| answer attention, mass on both objects per head | – | " + " | ".join(" ".join(f"{v:.2f}" for v in row) for row in m) + " |")
        print("greedy answers: " + ", ".join(f"{k} {picks.count(k) / len(picks):.2f}" for k in ("named", "other", "neither")) + f" ({len(picks)} scenes)")


if __name__ == "__main__":
    main()
