"""Evaluate a model: predict, score think and pred tubes with TubeDETR's metrics, save everything.

:func:`evaluate_model` = :func:`stvg_lab.infer.predict` + :func:`score_predictions` + :func:`write_report`.
``out_dir`` receives:

* ``predictions.jsonl``: one :class:`~stvg_lab.infer.Prediction` per sample (raw text, parse,
  tubes, latency, tokens, memory); resumable;
* ``answers_from.json``: which weights (:func:`stvg_lab.checkpoints.checkpoint_fingerprint`) and
  decoding wrote ``predictions.jsonl``; a resume under other weights or decoding asks every sample again;
* ``metrics.json``: m_tIoU, m_vIoU, vIoU@0.3, vIoU@0.5 (fractions), ``n``, ``n_missing`` for the
  ``pred`` and ``think`` tubes (``think`` is null for a format without ``<think_bbox>``), the
  same per VidSTG ``qtype`` under ``by_group`` when the samples carry one, the trivial baselines
  (:mod:`stvg_lab.baselines`) when a train split is given, and then under ``controls`` the
  model's own pred spans with the mean box (what its boxes add), the parse-failure rate and error
  counts, the consistent-answer rate (Eq. 4), mean latency / generated tokens / peak memory, and
  the generation settings;
* ``per_sample.jsonl``: per sample ``tIoU``/``vIoU`` of pred and think, spans, parse error,
  difficulty tags from ``extras`` (:data:`TAG_KEYS`), ``gt_area_ratio`` (mean gt box area over
  frame area, for the object-scale analysis of paper Fig. 4) and ``reward``: the answer's Eq. 3-10
  terms (:func:`answer_rewards`), whose means ``metrics.json`` holds under ``reward``.

Why the reward of a held-out answer: GRPO raises Eq. 10 on the prompts it samples, and whether that
reaches new clips, and whether it moves the metrics when it does, are two questions that the metrics
alone cannot tell apart (``stvg-lab compare --metrics R_total R_spatial m_vIoU``).

Ground truth is ``sample.tube`` (original frames and pixels). A sample whose answer does not
parse has an empty tube and scores 0 (counted in ``n_missing``). Evaluation frames:
``eval_frames="all"`` (default, and what ``stvg-lab evaluate`` uses) scores vIoU on every
frame of the original video; ``"tubedetr"`` only on TubeDETR's 5 fps frames
(:func:`stvg_lab.metrics.tubedetr_sampled_frames` over ``[0, num_frames - 1)`` for HC-STVG and
the synthetic set, over VidSTG's ``used_segment``), which is how TubeDETR and its successors
report. tIoU is the same under both.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from stvg_lab.answer import get_format
from stvg_lab.baselines import BASELINES, mean_relative_box, own_span_mean_box
from stvg_lab.checkpoints import checkpoint_fingerprint
from stvg_lab.data.layout import load_split
from stvg_lab.data.sample import Sample
from stvg_lab.infer import Prediction, predict
from stvg_lab.metrics import evaluate, evaluate_by_group, tubedetr_sampled_frames
from stvg_lab.rewards import DEFAULT_LAMBDA_K, score_completion
from stvg_lab.video import reward_columns

logger = logging.getLogger(__name__)

EVAL_FRAMES = ("all", "tubedetr")
METRIC_KEYS = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
TAG_KEYS = ("small", "short", "occluded", "occlusion", "event", "n_distractors", "qtype", "sentence_type", "category")
"""``extras`` keys copied into ``per_sample.jsonl`` when present (synthetic tags, VidSTG types)."""
PREDICTIONS_FILE, METRICS_FILE, PER_SAMPLE_FILE = "predictions.jsonl", "metrics.json", "per_sample.jsonl"
ANSWERS_STAMP_FILE = "answers_from.json"
OWN_SPAN_CONTROL = "pred span + mean box"
"""``metrics.json`` ``controls`` key: the model's pred spans with the mean training box (:func:`stvg_lab.baselines.own_span_mean_box`)."""
REWARD_TERMS = ("format", "consistency", "temporal", "spatial", "think", "total", "spa_pred", "spa_think")
"""``per_sample.jsonl`` ``reward`` keys: Eq. 3, 4, 5, 8, 9, 10 and Eq. 7 of the pred and think lists (:func:`answer_rewards`)."""


@dataclass
class EvalReport:
    """What an evaluation produced: ``metrics`` (the content of ``metrics.json``), per-sample rows, predictions."""

    metrics: dict[str, Any]
    per_sample: list[dict[str, Any]]
    predictions: list[Prediction] = field(repr=False)
    out_dir: Path | None = None

    def markdown(self) -> str:
        """:func:`metrics_table` of :attr:`metrics`."""
        return metrics_table(self.metrics)


def eval_frames_for(samples: Sequence[Sample], mode: str = "all") -> dict[str, list[int]] | None:
    """Frames at which vIoU is scored: None (all frames) or TubeDETR's 5 fps frames per sample id."""
    if mode == "all":
        return None
    if mode != "tubedetr":
        raise ValueError(f"eval_frames must be one of {EVAL_FRAMES}, got {mode!r}")
    out = {}
    for s in samples:
        segment = s.extras.get("used_segment")
        # VidSTG: TubeDETR samples inside used_segment [begin, end); HC-STVG: [0, img_num - 1)
        start, end = (int(segment[0]), int(segment[1])) if segment else (0, s.num_frames - 1)
        out[s.id] = tubedetr_sampled_frames(start, end, s.fps)
    return out


def gt_area_ratio(sample: Sample) -> float:
    """Mean over the tube's frames of gt box area / frame area (paper Fig. 4's object scale)."""
    boxes = np.asarray(list(sample.tube.values()), dtype=np.float64)  # (n, 4)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    return float(areas.mean() / (sample.width * sample.height))


def _tags(sample: Sample) -> dict[str, Any]:
    return {k: sample.extras[k] for k in TAG_KEYS if isinstance(sample.extras.get(k), (bool, int, float, str))}


def answer_rewards(prediction: Prediction | None, sample: Sample, lambda_k: float = DEFAULT_LAMBDA_K) -> dict[str, float]:
    """The reward terms of one answer (:data:`REWARD_TERMS`), as GRPO would have scored it on this clip.

    One yardstick for every model: the paper's rewards (GIoU - L1, λk = 0.5 by default), whatever
    a run trained on, computed by the reward functions' own code
    (:func:`stvg_lab.rewards.score_completion`) against the columns a GRPO dataset gives the clip
    at the frames and size the model saw (:func:`stvg_lab.video.reward_columns` on the
    prediction's ``frame_numbers`` and ``model_size``). No answer scores 0 on every term, as one
    that does not parse.
    """
    if prediction is None:
        return dict.fromkeys(REWARD_TERMS, 0.0)
    columns = reward_columns(sample, prediction.frame_numbers, prediction.model_size)
    scored = score_completion(prediction.text, columns["gt_span"], columns["gt_tube"], columns["frame_size"],
                              prediction.format, lambda_k)
    return {k: scored[k] for k in REWARD_TERMS}


def _span(tube: Mapping[int, Any] | None) -> list[int] | None:
    return [min(tube), max(tube)] if tube else None


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _scores(tubes: Mapping[str, Any], gts: Mapping[str, Any], frames: Mapping | None, groups: Mapping[str, str] | None) -> tuple[dict, dict | None]:
    result = evaluate(tubes, gts, frames, per_sample=True)
    by_group = evaluate_by_group(tubes, gts, groups, frames) if groups else None
    return result, by_group


def score_predictions(
    predictions: Sequence[Prediction],
    samples: Sequence[Sample],
    fmt: str = "paper",
    eval_frames: str = "all",
    train_samples: Sequence[Sample] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> EvalReport:
    """Score ``predictions`` against ``samples`` (pred and think tubes, baselines, per-sample rows); no I/O.

    Samples without a prediction score 0. ``settings`` (model path, generation options) is
    copied into the metrics for the record.
    """
    fmt = get_format(fmt)
    if not samples:
        raise ValueError("no samples to evaluate")
    by_id = {p.id: p for p in predictions}
    gts = {s.id: s.tube for s in samples}
    frames = eval_frames_for(samples, eval_frames)
    groups = {s.id: str(s.extras.get("qtype", "none")) for s in samples} if any("qtype" in s.extras for s in samples) else None

    pred_tubes = {sid: p.pred_tube for sid, p in by_id.items()}
    pred_scores, pred_groups = _scores(pred_tubes, gts, frames, groups)
    think_scores = think_groups = None
    if fmt.think:
        think_tubes = {sid: p.think_tube for sid, p in by_id.items()}
        think_scores, think_groups = _scores(think_tubes, gts, frames, groups)

    done = [by_id[s.id] for s in samples if s.id in by_id]
    errors = Counter(p.error for p in done if p.error)
    n = len(samples)
    rewards = {s.id: answer_rewards(by_id.get(s.id), s) for s in samples}
    metrics: dict[str, Any] = {
        "format": fmt.name,
        "eval_frames": eval_frames,
        "n": n,
        "n_predicted": len(done),
        "pred": {k: v for k, v in pred_scores.items() if k != "per_sample"},
        "think": {k: v for k, v in think_scores.items() if k != "per_sample"} if think_scores else None,
        "by_group": {"pred": pred_groups, "think": think_groups} if groups else None,
        "baselines": {},
        "controls": {},
        "parse_failure_rate": (sum(errors.values()) + n - len(done)) / n,
        "parse_errors": dict(sorted(errors.items())),
        "consistent_rate": sum(p.consistent for p in done) / n,
        "reward": {"lambda_k": DEFAULT_LAMBDA_K, **{k: float(np.mean([r[k] for r in rewards.values()])) for k in REWARD_TERMS}},
        "truncated_rate": sum(p.truncated for p in done) / n,
        "mean_latency_s": _mean([p.latency_s for p in done]),
        "mean_generated_tokens": _mean([p.generated_tokens for p in done]),
        "mean_peak_mem_bytes": _mean([p.peak_mem_bytes for p in done]),
        "max_peak_mem_bytes": max((p.peak_mem_bytes for p in done if p.peak_mem_bytes is not None), default=None),
        "mem_measure": sorted({p.mem_measure for p in done}),
        "settings": dict(settings or {}),
    }
    if train_samples:
        rel_box = mean_relative_box(train_samples)
        for name, baseline in BASELINES.items():
            metrics["baselines"][name] = evaluate(baseline(samples, rel_box), gts, frames)
        spans = {sid: _span(tube) for sid, tube in pred_tubes.items()}
        metrics["controls"] = {OWN_SPAN_CONTROL: evaluate(own_span_mean_box(spans, samples, rel_box), gts, frames)}

    rows = []
    for s in samples:
        p = by_id.get(s.id)
        ps = pred_scores["per_sample"][s.id]
        ts = think_scores["per_sample"][s.id] if think_scores else None
        rows.append(
            {
                "id": s.id,
                "error": p.error if p else "no_prediction",
                "consistent": bool(p.consistent) if p else False,
                "gt_span": list(s.span_frames),
                "pred_span": _span(p.pred_tube) if p else None,
                "think_span": _span(p.think_tube) if p else None,
                "tIoU_pred": ps["tIoU"],
                "vIoU_pred": ps["vIoU"],
                "tIoU_think": ts["tIoU"] if ts else None,
                "vIoU_think": ts["vIoU"] if ts else None,
                "gt_area_ratio": gt_area_ratio(s),
                "tags": _tags(s),
                "latency_s": p.latency_s if p else None,
                "generated_tokens": p.generated_tokens if p else None,
                "reward": rewards[s.id],
            }
        )
    return EvalReport(metrics=metrics, per_sample=rows, predictions=list(done))


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def answers_stamp(model_path: str | Path, backend: str, do_sample: bool, temperature: float,
                  max_new_tokens: int | None) -> dict[str, Any]:
    """What decides an evaluation's answers besides the clips: the weights and the decoding.

    ``weights``: the fingerprint of ``model_path`` when it is a folder, else the name itself (a hub
    id, which resume then trusts). The path is kept for the reader but not compared, so a moved
    checkpoint still resumes. The batch size is left out: it changes padding, not the answers.
    """
    path = Path(model_path)
    return {"model": str(model_path),
            "weights": f"fingerprint:{checkpoint_fingerprint(path)}" if path.is_dir() else f"name:{model_path}",
            "backend": backend, "do_sample": do_sample, "temperature": temperature if do_sample else None,
            "max_new_tokens": max_new_tokens}


def _read_stamp(path: Path) -> dict[str, Any] | None:
    """``answers_from.json``'s content, or None when it is missing or not a JSON object (warned, naming the file)."""
    if not path.is_file():
        return None
    try:
        stamp = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        stamp = e
    if isinstance(stamp, dict):
        return stamp
    logger.warning("%s: not a JSON object (%s); its answers count as unstamped", path, stamp)
    return None


def _start_answers(out: Path, stamp: dict[str, Any], resume: bool) -> bool:
    """Make ``out``'s answers file safe to resume under ``stamp``; returns whether to resume.

    Answers of other weights or decoding (or of an unstamped file, written before stamps existed, or
    one whose stamp does not read) are removed before the new stamp is written, so a run killed at
    any point leaves either no stamp or one that matches every answer in the file.
    """
    answers, stamp_file = out / PREDICTIONS_FILE, out / ANSWERS_STAMP_FILE
    if resume and answers.exists():
        old = _read_stamp(stamp_file)
        differs = [k for k in stamp if k != "model" and (old or {}).get(k) != stamp[k]]
        if differs:
            logger.warning("%s: its answers came from other %s (%s); asking every sample again",
                           answers, " and ".join(differs), "no stamp" if old is None else f"was {old}")
            resume = False
    if not resume:
        stamp_file.unlink(missing_ok=True)
        answers.unlink(missing_ok=True)
    _write_text(stamp_file, json.dumps(stamp) + "\n")
    return resume


def write_report(report: EvalReport, out_dir: str | Path) -> Path:
    """Write ``metrics.json`` and ``per_sample.jsonl`` into ``out_dir`` (each atomically); returns ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / METRICS_FILE, json.dumps(report.metrics, indent=2) + "\n")
    _write_text(out / PER_SAMPLE_FILE, "".join(json.dumps(r) + "\n" for r in report.per_sample))
    report.out_dir = out
    return out


def evaluate_model(
    model_path: str | Path,
    samples: Sequence[Sample],
    out_dir: str | Path,
    fmt: str = "paper",
    *,
    train_samples: Sequence[Sample] | None = None,
    eval_frames: str = "all",
    batch_size: int = 4,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    backend: str = "hf",
    resume: bool = True,
    progress: bool = True,
    device: str | None = None,
    model: Any = None,
    processor: Any = None,
) -> EvalReport:
    """Predict on ``samples`` with the checkpoint at ``model_path``, score, and write the three files.

    ``model``/``processor``: an already loaded pair to use instead of loading ``model_path``
    (which is then only recorded). ``backend="vllm"`` hands ``model_path`` to vLLM.
    ``train_samples``: when given, the trivial baselines and the pred-span control are scored too. Other arguments go to
    :func:`stvg_lab.infer.predict`. With ``resume``, samples already in
    ``out_dir/predictions.jsonl`` are not asked again, if the same weights and decoding wrote them
    (:func:`answers_stamp`; with an in-memory ``model``, ``model_path`` must be where it was loaded from).
    """
    if eval_frames not in EVAL_FRAMES:
        raise ValueError(f"eval_frames must be one of {EVAL_FRAMES}, got {eval_frames!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if model is None:
        if backend == "hf":
            from stvg_lab.model import load_model

            model, processor = load_model(model_path, device=device)
        else:
            model = str(model_path)
    resume = _start_answers(out, answers_stamp(model_path, backend, do_sample, temperature, max_new_tokens), resume)
    predictions = predict(
        model, processor, samples, fmt=fmt, batch_size=batch_size, max_new_tokens=max_new_tokens,
        do_sample=do_sample, temperature=temperature, out_path=out / PREDICTIONS_FILE, resume=resume,
        backend=backend, progress=progress,
    )
    settings = {
        "model": str(model_path), "backend": backend, "batch_size": batch_size, "max_new_tokens": max_new_tokens,
        "do_sample": do_sample, "temperature": temperature if do_sample else None,
    }
    report = score_predictions(predictions, samples, fmt, eval_frames, train_samples, settings)
    write_report(report, out)
    pred = report.metrics["pred"]
    logger.info(
        "%s on %d samples: m_tIoU %.1f, m_vIoU %.1f, vIoU@0.3 %.1f, vIoU@0.5 %.1f; %.0f%% unparsed; results in %s",
        model_path, report.metrics["n"], *(100 * pred[k] for k in METRIC_KEYS), 100 * report.metrics["parse_failure_rate"], out,
    )
    return report


def _row(name: str, scores: Mapping[str, Any]) -> str:
    return f"| {name} | " + " | ".join(f"{100 * scores[k]:.1f}" for k in METRIC_KEYS) + " |"


def metrics_table(metrics: Mapping[str, Any]) -> str:
    """A markdown table of ``metrics`` (as in ``metrics.json``): rows think, pred, per-qtype, the pred-span control, baselines; values in %."""
    lines = ["| tube | " + " | ".join(METRIC_KEYS) + " |", "|---|" + "---:|" * len(METRIC_KEYS)]
    for tube in ("think", "pred"):
        if metrics.get(tube):
            lines.append(_row(tube, metrics[tube]))
    for tube, groups in (metrics.get("by_group") or {}).items():
        for group, scores in (groups or {}).items():
            if group != "all":
                lines.append(_row(f"{tube} ({group})", scores))
    for name, scores in (metrics.get("controls") or {}).items():
        lines.append(_row(f"control: {name}", scores))
    for name, scores in (metrics.get("baselines") or {}).items():
        lines.append(_row(f"baseline: {name}", scores))
    n, rate = metrics.get("n"), metrics.get("parse_failure_rate")
    footer = f"\n\n{n} samples, {metrics.get('format')} format, vIoU on {metrics.get('eval_frames')} frames"
    if rate is not None:
        footer += f"; {100 * rate:.1f}% of answers did not parse (scored 0)"
    footer += "."
    r = metrics.get("reward")
    if r:  # Eq. 10's sum, term by term, so that a reader can see which term carries it
        footer += (f" Mean reward of the answers (Eq. 10, the paper's rewards, λk = {r['lambda_k']:g}): {r['total']:.3f} = "
                   f"format {r['format']:.3f} + consistency {r['consistency']:.3f} + temporal {r['temporal']:.3f} + "
                   f"spatial {r['spatial']:.3f} + {r['lambda_k']:g} × think {r['think']:.3f}.")
    return "\n".join(lines) + footer


def evaluate_command(
    model: str | Path,
    data: str | Path,
    split: str = "test",
    out: str | Path = "runs/eval",
    fmt: str = "paper",
    backend: str = "hf",
    max_samples: int | None = None,
    batch_size: int = 4,
    max_new_tokens: int | None = None,
    eval_frames: str = "all",
    train_split: str | None = "train",
    device: str | None = None,
    resume: bool = True,
) -> EvalReport:
    """``stvg-lab evaluate``: load ``split`` of ``data`` (:func:`stvg_lab.data.layout.load_split`), evaluate ``model``, write ``out``.

    ``max_samples`` keeps the first N samples. ``train_split`` (None to skip) feeds the
    baselines; a dataset without it just has no baseline rows. Returns the report; print
    ``report.markdown()``.
    """
    samples = load_split(data, split)
    if max_samples is not None:
        samples = samples[: int(max_samples)]
    train = None
    if train_split:
        try:
            train = load_split(data, train_split)
        except (FileNotFoundError, ValueError) as e:
            logger.info("no %r split in %s (%s): baselines are not scored", train_split, data, e)
    return evaluate_model(
        model, samples, out, fmt, train_samples=train, eval_frames=eval_frames, batch_size=batch_size,
        max_new_tokens=max_new_tokens, backend=backend, resume=resume, device=device,
    )
