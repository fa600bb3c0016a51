# .venv/bin/python bench/bench_tokenizer.py [--steps 5] [--threads 2] [--json out.json]
"""Token counts of the answer formats (real Qwen vocabulary) and the cost of each stand-in vocabulary.

1. Tokens per answer for every format in ``stvg_lab.answer.FORMATS``, counted with Qwen2's real
   vocabulary (the one Qwen2.5-VL uses) and with the stand-in's BPE, for a typical answer on a
   12-frame clip (span of 7 sampled frames, 3-digit coordinates on a 336x196 frame), plus the prompt.
2. For ``build_tiny_model(vocab="bpe")`` and ``vocab="qwen"``: parameters, and seconds per
   forward+backward step on a 12-frame 224x224 clip with a ~100-token answer (torch threads as given).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time

import numpy as np
import torch

from stvg_lab.answer import FORMATS, PromptSpec, build_prompt, format_answer
from stvg_lab.model import build_model_inputs, build_tiny_model, build_tokenizer, count_parameters, load_model

SPAN = (3, 9)
QUERY = "the man in the black suit who walks to the door and turns around"


def typical_answer(fmt: str) -> str:
    """A 7-box tube on a 336x196 frame, think boxes a few pixels off the pred boxes."""
    pred = {k: [101 + 4 * k, 38 + k, 189 + 4 * k, 187 - k] for k in range(SPAN[0], SPAN[1] + 1)}
    think = {k: [b[0] - 6, b[1] - 3, b[2] + 5, b[3] + 2] for k, b in pred.items()}
    return format_answer(SPAN, pred, think, fmt)


def token_counts() -> list[dict]:
    tokenizers = {"qwen": build_tokenizer("qwen"), "bpe": build_tokenizer("bpe")}
    rows = []
    for name in FORMATS:
        answer = typical_answer(name)
        prompt = build_prompt(QUERY, PromptSpec(num_frames=12, width=336, height=196), name)
        row = {"format": name, "chars": len(answer)}
        for vocab, tok in tokenizers.items():
            row[f"answer_{vocab}"] = len(tok(answer, add_special_tokens=False)["input_ids"])
            row[f"prompt_{vocab}"] = len(tok(prompt, add_special_tokens=False)["input_ids"])
        row["per_frame_qwen"] = round(row["answer_qwen"] / (SPAN[1] - SPAN[0] + 1), 1)
        rows.append(row)
    return rows


def step_time(vocab: str, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        path = build_tiny_model(tmp, vocab=vocab)
        build_s = time.perf_counter() - t0
        model, processor = load_model(path, device="cpu")
        model.train()
        frames = np.random.default_rng(0).integers(0, 256, (12, 224, 224, 3), dtype=np.uint8)
        # ~100 answer tokens: the paper format over a 2-frame span on a 224x224 frame
        pred = {k: [40 + 3 * k, 50, 120 + 3 * k, 170] for k in range(2, 4)}
        think = {k: [b[0] - 5, b[1] - 4, b[2] + 6, b[3] + 3] for k, b in pred.items()}
        answer = format_answer((2, 3), pred, think, "paper")
        prompt = build_prompt(QUERY, PromptSpec(num_frames=12, width=224, height=224), "paper")
        inputs = build_model_inputs(processor, frames, prompt, answer)
        n_answer = int((inputs["labels"] != -100).sum())
        opt = torch.optim.SGD(model.parameters(), lr=1e-3)
        times = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            loss = model(**inputs).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i:  # the first step warms up allocators and kernels
                times.append(time.perf_counter() - t0)
        return {
            "vocab": vocab,
            "vocab_size": model.config.text_config.vocab_size,
            "parameters": count_parameters(model),
            "sequence_tokens": int(inputs["input_ids"].shape[1]),
            "answer_tokens_trained": n_answer,
            "s_per_step_median": round(statistics.median(times), 4),
            "s_per_step_min": round(min(times), 4),
            "build_s": round(build_s, 2),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)

    counts = token_counts()
    print("answer tokens for a 7-box tube on a 12-frame clip (qwen = Qwen2.5-VL's real vocabulary)")
    print(f"{'format':<18}{'chars':>6}{'qwen':>6}{'bpe':>6}{'qwen/frame':>11}{'prompt qwen':>12}{'prompt bpe':>11}")
    for r in counts:
        print(f"{r['format']:<18}{r['chars']:>6}{r['answer_qwen']:>6}{r['answer_bpe']:>6}{r['per_frame_qwen']:>11}{r['prompt_qwen']:>12}{r['prompt_bpe']:>11}")

    timings = [step_time(v, args.steps) for v in ("bpe", "qwen")]
    print(f"\nforward+backward, 12 frames 224x224, torch threads={args.threads}, median of {args.steps} steps")
    print(f"{'vocab':<6}{'vocab size':>11}{'params':>11}{'seq':>6}{'ans':>5}{'s/step':>9}{'min':>8}{'build s':>9}")
    for t in timings:
        print(f"{t['vocab']:<6}{t['vocab_size']:>11}{t['parameters']:>11}{t['sequence_tokens']:>6}{t['answer_tokens_trained']:>5}{t['s_per_step_median']:>9}{t['s_per_step_min']:>8}{t['build_s']:>9}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"token_counts": counts, "timings": timings, "threads": args.threads, "steps": args.steps}, f, indent=2)


if __name__ == "__main__":
    main()
