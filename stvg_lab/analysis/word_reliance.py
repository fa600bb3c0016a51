"""Does an answer read the attribute words? The target's answer under its own sentence vs the sentence of a distractor.

Why: ``which_object`` counts where greedy boxes land, a few answers per clip and only on frames where
both objects are in view; it found the stand-in tells objects apart by the size word (bench/LEARNING.md
round 15). This control asks the question of every digit of the answer, teacher-forced: on a clip with a
distractor that differs from the target in one attribute ``a`` alone (every distractor of the
``one_attribute`` preset), the sentence that names that distractor is the target's with one word
changed. A model that binds ``a``'s word to the object finds the target's answer less likely under the
distractor's sentence (``gap = swapped - own > 0`` nats per digit of the boxes); ``gap ≈ 0`` means it
answers the same whichever object the word picks. Same frames both times, so the video cannot explain a gap.

    from stvg_lab.analysis.word_reliance import word_gaps
    word_gaps(model, processor, samples, "data/one_attribute", fmt="compact")
    # {"colour": {"clips": 48, "pred box 1": {"own", "swapped", "gap", "n"}, ...}, "size": {...}, ...}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from stvg_lab.data.synth import ATTRIBUTES, SynthConfig, query_text, read_manifest


def distractor_query(sample: Any, cfg: SynthConfig) -> tuple[str, str] | None:
    """``(attribute, sentence)``: the sentence naming the clip's first distractor that differs from the target in one attribute alone.

    ``sample``: a :func:`~stvg_lab.data.synth.load_synthetic` sample (its ``extras`` hold the target's
    ``attributes``, the ``distractors``' attributes, the ``template`` and ``event`` its query was made
    from); ``cfg``: the benchmark's config. None when no distractor differs in exactly one attribute.
    The sentence keeps the target's template and event, so only the one word (or motion phrase) changes.
    """
    target = sample.extras["attributes"]
    for d in sample.extras.get("distractors", []):
        differ = [a for a in ATTRIBUTES if d[a] != target[a]]
        if len(differ) == 1:
            return differ[0], query_text(cfg, int(sample.extras["template"]), d, sample.extras["event"])
    return None


def word_gaps(
    model: Any, processor: Any, samples: Sequence[Any], data_dir: str | Path, fmt: str = "compact", *,
    think_target: str = "grid", fps: float = 2.0, max_side: int = 336,
) -> dict[str, dict[str, Any]]:
    """Per attribute: the clips with a distractor differing in it alone, and :func:`~stvg_lab.analysis.reliance.prompt_segment_gaps` of their SFT targets.

    Returns ``{attribute: {"clips": k, <segment>: {"own", "swapped", "gap", "n"}, ...}}`` for the
    attributes that occur (``ATTRIBUTES`` order). Each row's prompt is the format's instruction with
    the target's sentence, its decoy the same with the distractor's sentence; the answer is the
    target's SFT target (``stvg_lab.train.dataset.sft_target``) with the model's own frames.
    """
    from stvg_lab.analysis.reliance import grounding_rows, prompt_segment_gaps
    from stvg_lab.answer import build_prompt
    from stvg_lab.train.dataset import ClipCache

    cfg = SynthConfig.from_dict(read_manifest(data_dir)["config"])
    picked = [(s, q) for s in samples if (q := distractor_query(s, cfg)) is not None]
    cache = ClipCache(fps, max_side)
    out: dict[str, dict[str, Any]] = {}
    for attribute in ATTRIBUTES:
        group = [(s, sentence) for s, (a, sentence) in picked if a == attribute]
        if not group:
            continue
        rows = grounding_rows([s for s, _ in group], fmt, think_target=think_target, cache=cache)
        decoys = [build_prompt(sentence, cache.get(s).prompt_spec(), fmt) for s, sentence in group]  # decoded above: cached
        _check_decoys_differ(rows, decoys, [s.id for s, _ in group])
        gaps = prompt_segment_gaps(model, processor, rows, decoys, fps=fps, names=[s.id for s, _ in group])
        out[attribute] = {"clips": len(group), **gaps}
    return out


def _check_decoys_differ(rows: Sequence[tuple[Any, str, str]], decoys: Sequence[str], names: Sequence[str]) -> None:
    """A decoy prompt equal to its own prompt would measure nothing; name the clip."""
    for (_, prompt, _), decoy, name in zip(rows, decoys, names):
        if prompt == decoy:
            raise ValueError(f"word_gaps: {name}: the distractor's sentence equals the target's")


def gap_table(results: Mapping[str, Mapping[str, Mapping[str, Any]]], segments: Sequence[str] = ("time", "pred box 1", "pred boxes 2+")) -> str:
    """Markdown: one row per model, per attribute the gap (nats per digit) of each of ``segments`` and the clips."""
    from stvg_lab.analysis.tables import render_table

    attributes = [a for a in ATTRIBUTES if any(a in r for r in results.values())]
    header = ["model", *(f"{a}: {seg}" for a in attributes for seg in segments), *(f"{a}: clips" for a in attributes)]
    rows = []
    for name, r in results.items():
        gaps = [f"{r[a][seg]['gap']:+.2f}" if a in r and seg in r[a] else "–" for a in attributes for seg in segments]
        rows.append([name, *gaps, *(str(r[a]["clips"]) if a in r else "0" for a in attributes)])
    return render_table(header, rows)
