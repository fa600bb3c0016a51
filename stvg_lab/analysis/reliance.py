"""Does a model read the video? Answer loss with each clip's own frames versus another clip's.

    from stvg_lab.analysis.reliance import video_reliance
    video_reliance("runs/sft/final", samples, fmt="compact")   # {"own": 0.37, "swapped": 0.37, "gap": 0.0, ...}

A grounding number above a trivial baseline can come from the sentence alone ("moves up" tells
the direction of the boxes, the event kind tells a typical span). This control separates the two:
the teacher-forced loss of the SFT target (``stvg_lab.train.dataset.sft_target``) is computed
once with each sample's own frames and once with the frames of the next sample in the list (a
cyclic shift, so every clip is used once as a decoy; the decoy must have the same frame count and
size). A model that uses the video has ``gap = swapped - own > 0``; ``gap ≈ 0`` means its answers
do not depend on the pixels, whatever its metrics say. bench/LEARNING.md reports it for every
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
    import torch

    from stvg_lab.model import build_model_inputs, load_model
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
    for i, clip in enumerate(clips):
        decoy = clips[(i + 1) % len(clips)]
        if decoy.frames.shape != clip.frames.shape:
            raise ValueError(
                f"video_reliance: {samples[i].id} has frames {clip.frames.shape}, its decoy "
                f"{samples[(i + 1) % len(samples)].id} {decoy.frames.shape}; give samples of one clip length and size"
            )
    was_training = model.training
    model.eval()
    totals = {"own": 0.0, "swapped": 0.0}
    try:
        with torch.no_grad():
            for i, (s, clip) in enumerate(zip(samples, clips)):
                prompt, answer = prompt_text(s, clip, fmt), sft_target(s, clip, fmt, think_target)
                for key, frames in (("own", clip.frames), ("swapped", clips[(i + 1) % len(clips)].frames)):
                    inputs = build_model_inputs(processor, frames, prompt, answer, fps=fps)
                    inputs = {k: v.to(model.device) for k, v in inputs.items()}
                    totals[key] += float(model(**inputs).loss)
    finally:
        model.train(was_training)
    n = len(samples)
    own, swapped = totals["own"] / n, totals["swapped"] / n
    return {"own": own, "swapped": swapped, "gap": swapped - own, "n": n}
