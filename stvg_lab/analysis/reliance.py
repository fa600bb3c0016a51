"""Does a model read the video? Answer loss with each clip's own frames versus another clip's.

    from stvg_lab.analysis.reliance import video_reliance, swap_gap
    video_reliance("runs/sft/final", samples, fmt="compact")   # {"own": 0.37, "swapped": 0.37, "gap": 0.0, ...}
    swap_gap(model, processor, [(frames, question, answer), ...], batch_size=8)  # any question

A grounding number above a trivial baseline can come from the sentence alone ("moves up" tells
the direction of the boxes, the event kind tells a typical span). This control separates the two:
the teacher-forced loss of an answer is computed once with each row's own frames and once with
the frames of the next row in the list (a cyclic shift, so every clip is used once as a decoy;
the decoy must have the same frame count and size). A model that uses the video has
``gap = swapped - own > 0``; ``gap ≈ 0`` means its answers do not depend on the pixels, whatever
its metrics say. :func:`swap_gap` does it for any ``(frames, prompt, answer)`` rows (the bench
probes ask their own questions); :func:`video_reliance` for the SFT target
(``stvg_lab.train.dataset.sft_target``) of samples. bench/LEARNING.md reports it for every
stand-in configuration.
"""

from __future__ import annotations

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
    from stvg_lab.task import prompt_text
    from stvg_lab.train.dataset import ClipCache, sft_target

    if len(samples) < 2:
        raise ValueError(f"video_reliance needs at least 2 samples to swap videos, got {len(samples)}")
    if isinstance(model, (str, Path)):
        model, processor = load_model(model)
    elif processor is None:
        raise ValueError("video_reliance: pass the processor with a loaded model")
    cache = ClipCache(fps, max_side)
    clips = [cache.get(s) for s in samples]
    rows = [(c.frames, prompt_text(s, c, fmt), sft_target(s, c, fmt, think_target)) for s, c in zip(samples, clips)]
    return swap_gap(model, processor, rows, fps=fps, names=[s.id for s in samples])


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

    n = len(rows)
    names = list(names) if names is not None else [f"row {i}" for i in range(n)]
    if n < 2:
        raise ValueError(f"swap_gap needs at least 2 rows to swap videos, got {n}")
    frames = [r[0] for r in rows]
    for i in range(n):
        j = (i + 1) % n
        if frames[j].shape != frames[i].shape:
            raise ValueError(
                f"swap_gap: {names[i]} has frames {frames[i].shape}, its decoy {names[j]} {frames[j].shape}; "
                "give rows of one clip length and size"
            )
    decoys = frames[1:] + frames[:1]
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
