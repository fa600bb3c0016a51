"""Does a model read the video? Answer loss with each clip's own frames versus another clip's.

    from stvg_lab.analysis.reliance import video_reliance, swap_gap
    video_reliance("runs/sft/final", samples, fmt="compact")   # {"own": 0.37, "swapped": 0.37, "gap": 0.0, ...}
    swap_gap(model, processor, [(frames, question, answer), ...], batch_size=8)  # any question
    segment_gaps(model, processor, rows)  # the same, per part of a grounding answer: {"time": {...}, "pred box 1": {...}, ...}

A grounding number above a trivial baseline can come from the sentence alone ("moves up" tells
the direction of the boxes, the event kind tells a typical span). This control separates the two:
the teacher-forced loss of an answer is computed once with each row's own frames and once with
the frames of the next row in the list (a cyclic shift, so every clip is used once as a decoy;
the decoy must have the same frame count and size). A model that uses the video has
``gap = swapped - own > 0``; ``gap ≈ 0`` means its answers do not depend on the pixels, whatever
its metrics say. :func:`swap_gap` does it for any ``(frames, prompt, answer)`` rows (the bench
probes ask their own questions); :func:`video_reliance` for the SFT target
(``stvg_lab.train.dataset.sft_target``) of samples. bench/LEARNING.md reports it for every
stand-in configuration. :func:`segment_gaps` splits the control over the answer's numbers (the
span, the first box, the later boxes): a whole-answer gap is dominated by the many tokens the
sentence and the format already give, and reading the video shows first in a few of them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from stvg_lab.data.sample import Sample


def video_reliance(
    model: Any,
    samples: Sequence[Sample],
    fmt: str = "paper",
    *,
    processor: Any = None,
    think_target: str = "grid",
    fps: float = 2.0,
    max_side: int = 336,
) -> dict[str, float]:
    """Mean answer loss with own vs swapped videos over ``samples`` (module docstring).

    ``model``: a checkpoint path (loaded with :func:`stvg_lab.model.load_model`) or a loaded model,
    then with ``processor``. Returns ``own``, ``swapped``, ``gap`` (= swapped - own), ``n``.
    """
    from stvg_lab.model import load_model

    if len(samples) < 2:
        raise ValueError(f"video_reliance needs at least 2 samples to swap videos, got {len(samples)}")
    if isinstance(model, (str, Path)):
        model, processor = load_model(model)
    elif processor is None:
        raise ValueError("video_reliance: pass the processor with a loaded model")
    rows = grounding_rows(samples, fmt, think_target=think_target, fps=fps, max_side=max_side)
    return swap_gap(model, processor, rows, fps=fps, names=[s.id for s in samples])


def grounding_rows(
    samples: Sequence[Sample], fmt: str = "paper", *, think_target: str = "grid", fps: float = 2.0, max_side: int = 336,
    cache: Any = None,
) -> list[tuple[Any, str, str]]:
    """``(frames, prompt, SFT target)`` per sample: the rows :func:`swap_gap` and :func:`segment_gaps` score.

    ``cache``: a ``stvg_lab.train.dataset.ClipCache`` to decode through (default: a new one at ``fps``
    and ``max_side``), for a caller that needs the clips again.
    """
    from stvg_lab.task import prompt_text
    from stvg_lab.train.dataset import ClipCache, sft_target

    cache = cache if cache is not None else ClipCache(fps, max_side)
    clips = [cache.get(s) for s in samples]
    return [(c.frames, prompt_text(s, c, fmt), sft_target(s, c, fmt, think_target)) for s, c in zip(samples, clips)]


def _own_and_decoy_frames(rows: Sequence[tuple[Any, str, str]], names: Sequence[str] | None, caller: str) -> tuple[list, list, list]:
    """Row names (default: indices), each row's frames and its decoy's (the next row's, cyclic); a ValueError names rows that do not fit."""
    n = len(rows)
    names = list(names) if names is not None else [f"row {i}" for i in range(n)]
    if n < 2:
        raise ValueError(f"{caller} needs at least 2 rows to swap videos, got {n}")
    frames = [r[0] for r in rows]
    for i in range(n):
        j = (i + 1) % n
        if frames[j].shape != frames[i].shape:
            raise ValueError(
                f"{caller}: {names[i]} has frames {frames[i].shape}, its decoy {names[j]} {frames[j].shape}; "
                "give rows of one clip length and size"
            )
    return names, frames, frames[1:] + frames[:1]


def swap_gap(
    model: Any,
    processor: Any,
    rows: Sequence[tuple[Any, str, str]],
    *,
    batch_size: int = 1,
    fps: float = 2.0,
    names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Mean answer loss of ``rows`` = ``(frames (T, H, W, 3) uint8, prompt, answer)`` with own vs next row's frames.

    Losses are the model's token-mean loss per batch of ``batch_size`` rows, averaged over batches
    (``batch_size=1``: the mean per-row loss). ``names`` label the rows in errors (default: indices).
    Returns ``own``, ``swapped``, ``gap`` (= swapped - own) and ``n``; the model's train/eval mode is kept.
    """
    import torch

    from stvg_lab.model import build_model_inputs

    _, frames, decoys = _own_and_decoy_frames(rows, names, "swap_gap")
    n = len(rows)
    was_training = model.training
    model.eval()
    totals = {"own": [], "swapped": []}
    try:
        with torch.no_grad():
            for start in range(0, n, batch_size):
                batch = slice(start, start + batch_size)
                prompts, answers = [r[1] for r in rows[batch]], [r[2] for r in rows[batch]]
                for key, videos in (("own", frames), ("swapped", decoys)):
                    inputs = build_model_inputs(processor, videos[batch], prompts, answers, fps=fps)
                    inputs = {k: v.to(model.device) for k, v in inputs.items()}
                    totals[key].append(float(model(**inputs).loss))
    finally:
        model.train(was_training)
    own, swapped = (sum(totals[k]) / len(totals[k]) for k in ("own", "swapped"))
    return {"own": own, "swapped": swapped, "gap": swapped - own, "n": n}


ANSWER_SEGMENTS: tuple[str, ...] = ("time", "think box 1", "think boxes 2+", "pred box 1", "pred boxes 2+")
_TAGGED = re.compile(r"<(time|think_bbox|pred_bbox)>(.*?)</\1>", re.S)
_BOX = re.compile(r"\[[^\[\]]*\]")


def answer_segments(answer: str) -> list[str | None]:
    """Per character of a serialised answer: the :data:`ANSWER_SEGMENTS` entry of each digit, None elsewhere.

    Digits inside ``<time>`` are ``time``; inside ``<think_bbox>`` / ``<pred_bbox>`` only the digits
    within ``[...]`` count (the paper format's frame labels ``"5."`` are not coordinates), split
    into the first box of the tag and the rest. Works for every format of ``stvg_lab.answer``.
    """
    out: list[str | None] = [None] * len(answer)
    for tag in _TAGGED.finditer(answer):
        name, start = tag.group(1), tag.start(2)
        if name == "time":
            spans = [("time", start, tag.end(2))]
        else:
            part = name.split("_")[0]
            spans = [(f"{part} box 1" if i == 0 else f"{part} boxes 2+", start + b.start(), start + b.end())
                     for i, b in enumerate(_BOX.finditer(tag.group(2)))]
        for segment, lo, hi in spans:
            for k in range(lo, hi):
                if answer[k].isdigit():
                    out[k] = segment
    return out


def segment_gaps(
    model: Any,
    processor: Any,
    rows: Sequence[tuple[Any, str, str]],
    *,
    fps: float = 2.0,
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`swap_gap` per answer segment: mean NLL of the digit tokens of each segment, own vs next row's frames.

    ``rows`` = ``(frames, prompt, answer)`` with grounding answers (:func:`answer_segments`); one
    row per forward. Returns ``{segment: {"own", "swapped", "gap", "n"}}`` for the segments that
    occur (``n``: digit tokens). A token counts for the segment of its first digit.
    """
    names, frames, decoys = _own_and_decoy_frames(rows, names, "segment_gaps")
    pairs = [(answer, (frames[i], prompt), (decoys[i], prompt)) for i, (_, prompt, answer) in enumerate(rows)]
    return _paired_segment_gaps(model, processor, pairs, fps, names, "segment_gaps")


def prompt_segment_gaps(
    model: Any,
    processor: Any,
    rows: Sequence[tuple[Any, str, str]],
    decoy_prompts: Sequence[str],
    *,
    fps: float = 2.0,
    names: Sequence[str] | None = None,
) -> dict[str, dict[str, float]]:
    """:func:`segment_gaps` with the frames kept and the prompt swapped: each row's answer under its own prompt vs ``decoy_prompts[i]``.

    Why: the video control asks whether an answer reads the pixels; this one asks whether it reads a
    word of the sentence (``stvg_lab.analysis.word_reliance`` swaps one attribute word for a
    distractor's). Same return as :func:`segment_gaps` (``swapped``: the decoy prompt's NLL).
    """
    if len(decoy_prompts) != len(rows):
        raise ValueError(f"prompt_segment_gaps: {len(rows)} rows but {len(decoy_prompts)} decoy prompts")
    names = list(names) if names is not None else [f"row {i}" for i in range(len(rows))]
    pairs = [(answer, (frames, prompt), (frames, decoy)) for (frames, prompt, answer), decoy in zip(rows, decoy_prompts)]
    return _paired_segment_gaps(model, processor, pairs, fps, names, "prompt_segment_gaps")


def _paired_segment_gaps(
    model: Any, processor: Any, pairs: Sequence[tuple[str, tuple[Any, str], tuple[Any, str]]], fps: float, names: Sequence[str], caller: str,
) -> dict[str, dict[str, float]]:
    """Per-segment mean NLL of each pair's answer given its first ``(frames, prompt)`` ("own") and its second ("swapped")."""
    import torch

    from stvg_lab.model import build_model_inputs

    tokenizer = processor.tokenizer
    sums: dict[str, list[tuple[float, float]]] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, (answer, *inputs_pair) in enumerate(pairs):
                nll, answer_ids = [], []
                for video, prompt in inputs_pair:
                    inputs = {k: v.to(model.device) for k, v in build_model_inputs(processor, video, prompt, answer, fps=fps).items()}
                    logits = model(**inputs).logits[0, :-1]  # (L-1, V): token j+1 predicted at j
                    labels = inputs["labels"][0, 1:]
                    keep = labels != -100  # the answer's tokens: the same with either input
                    nll.append(torch.nn.functional.cross_entropy(logits[keep].float(), labels[keep], reduction="none").tolist())
                    answer_ids.append(labels[keep].tolist())
                if answer_ids[0] != answer_ids[1]:
                    raise ValueError(f"{caller}: {names[i]}: the answer tokenises differently after the two inputs")
                segments, pos = answer_segments(answer), 0
                for j, token in enumerate(answer_ids[0]):
                    piece = tokenizer.decode([token])
                    if answer[pos : pos + len(piece)] != piece:
                        break  # past the answer: <|im_end|> and its newline
                    segment = next((segments[pos + k] for k, ch in enumerate(piece) if ch.isdigit()), None)
                    pos += len(piece)
                    if segment is not None:
                        sums.setdefault(segment, []).append((nll[0][j], nll[1][j]))
                if pos != len(answer):
                    raise ValueError(f"{caller}: {names[i]}: the answer's tokens do not decode back to it (stopped at character {pos})")
    finally:
        model.train(was_training)
    out = {}
    for segment in ANSWER_SEGMENTS:
        if segment in sums:
            own, swapped = (sum(p[k] for p in sums[segment]) / len(sums[segment]) for k in (0, 1))
            out[segment] = {"own": own, "swapped": swapped, "gap": swapped - own, "n": len(sums[segment])}
    return out
