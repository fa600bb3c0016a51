"""What the reward functions read: TRL's completions and dataset columns, checked and converted.

Every reward of ``stvg_lab.rewards`` is ``f(completions, **kwargs)``; this module turns those
arguments into parsed answers (``parse_completions``) and per-row ``GroundTruth`` on the model's
frame grid (``ground_truths``), and owns the errors a malformed column raises.

Inputs (the contract with the GRPO trainer and the datasets):

* ``completions``: strings, or chat message lists; the text of the last assistant message
  is scored (``content`` a string or a list of ``{"type": "text", "text": ...}`` parts).
* dataset columns, one entry per completion: ``gt_span`` ``[s, e]`` (inclusive sampled-frame
  indices), ``gt_tube`` rows ``[k, x1, y1, x2, y2]`` or a mapping ``{k: [x1, y1, x2, y2]}``
  (keys int or str) in model-frame pixels, ``frame_size`` ``[W, H]`` of the model frame,
  and optionally ``answer_format`` (a name in ``stvg_lab.answer.FORMATS``, default paper).
  Other keyword arguments (``prompts``, ``completion_ids``, ``trainer_state``, ...) are
  ignored. A missing column raises ``KeyError`` and a malformed one ``ValueError``, each
  naming the column and the row: those are programming errors, not model output.

``ground_truth`` converts one row, as ``stvg_lab.rewards.score_completion`` does for one completion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from stvg_lab.answer import ParsedAnswer, get_format, parse_answer


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """One sample's ground truth on the model's frame grid, ready for Eq. 5-7.

    ``frames`` are the sampled indices inside ``span`` that have a box, ascending;
    ``boxes`` their boxes in frame units (x / W, y / H) clipped to ``[0, 1]``, shape (K, 4).
    """

    span: tuple[int, int]
    frames: tuple[int, ...]
    boxes: np.ndarray
    size: tuple[float, float]


def _as_index(value: Any) -> int:
    """An integer frame index from an int, an integral float (HF datasets) or a numeric str."""
    if isinstance(value, str):
        value = float(value.strip())
    f = float(value)
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"{value!r} is not an integer")
    return int(f)


def ground_truth_span(gt_span: Any, where: str = "ground truth") -> tuple[int, int]:
    """Validate one row's ``gt_span`` column: ``[s, e]`` integers with ``0 <= s <= e``."""
    try:
        s, e = (_as_index(v) for v in gt_span)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: column 'gt_span' must be [start, end] integers; got {gt_span!r}") from None
    if not 0 <= s <= e:
        raise ValueError(f"{where}: column 'gt_span' must satisfy 0 <= start <= end; got {gt_span!r}")
    return s, e


def ground_truth(gt_span: Any, gt_tube: Any, frame_size: Any, where: str = "ground truth") -> GroundTruth:
    """Validate and convert one row's ``gt_span``, ``gt_tube`` and ``frame_size`` columns.

    Raises ValueError naming ``where`` (e.g. "row 3") and the column when a value is
    malformed: a span that is not ``[s, e]`` with ``0 <= s <= e``, a frame size that is not
    two positive numbers, a tube row that is not ``[k, x1, y1, x2, y2]`` of finite numbers,
    or a frame given twice. Boxes outside ``span`` are ignored.
    """
    s, e = ground_truth_span(gt_span, where)
    try:
        w, h = (float(v) for v in frame_size)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: column 'frame_size' must be [W, H]; got {frame_size!r}") from None
    if not (math.isfinite(w) and math.isfinite(h) and w > 0 and h > 0):
        raise ValueError(f"{where}: column 'frame_size' must be two positive numbers; got {frame_size!r}")

    if gt_tube is None:
        raise ValueError(f"{where}: column 'gt_tube' is None; give [] for a sample without boxes")
    shape_error = (
        f"{where}: column 'gt_tube' must hold rows [k, x1, y1, x2, y2] or a mapping {{k: [x1, y1, x2, y2]}} "
        f"of numbers; got {str(gt_tube)[:200]}"
    )
    try:
        if isinstance(gt_tube, Mapping):
            # None values are skipped: an HF datasets struct column fills the keys that other
            # rows have and this one lacks with None
            items = [(_as_index(k), box) for k, box in gt_tube.items() if box is not None]
            table = np.asarray([[k, *box] for k, box in items], dtype=np.float64)
        else:
            table = np.asarray(gt_tube, dtype=np.float64)  # (K, 5) rows [k, x1, y1, x2, y2]
    except (TypeError, ValueError):
        raise ValueError(shape_error) from None
    table = table.reshape(0, 5) if table.size == 0 else table
    if table.ndim != 2 or table.shape[1] != 5:
        raise ValueError(shape_error)
    if not np.all(np.isfinite(table)):
        raise ValueError(f"{where}: column 'gt_tube' needs finite numbers; got {str(gt_tube)[:200]}")
    if not np.all(table[:, 0] == np.round(table[:, 0])):
        raise ValueError(f"{where}: column 'gt_tube' frame indices must be integers; got {table[:, 0].tolist()}")
    frames = table[:, 0].astype(np.int64)  # (K,)
    if len(set(frames.tolist())) != len(frames):
        raise ValueError(f"{where}: column 'gt_tube' gives a frame twice; got {sorted(frames.tolist())}")
    order = np.argsort(frames, kind="stable")
    order = order[(frames[order] >= s) & (frames[order] <= e)]
    # (K', 4): pixels -> frame units, then clip, so both GIoU and the L1 of Eq. 7 see [0, 1]
    unit = np.clip(table[order, 1:] / np.array([w, h, w, h]), 0.0, 1.0)
    return GroundTruth((s, e), tuple(frames[order].tolist()), unit, (w, h))


def completion_text(completion: Any, where: str = "completion") -> Any:
    """The text to score: a string as is, or the last assistant message of a chat list.

    A message's ``content`` may be a string or a list of parts, whose ``"text"`` parts are
    joined. Anything that is not text (None content) is passed on for ``parse_answer`` to
    reject. Raises ValueError for a completion that is neither a string nor a message list.
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence):
        for msg in reversed(completion):
            if isinstance(msg, Mapping) and msg.get("role", "assistant") == "assistant":
                content = msg.get("content")
                if isinstance(content, list):
                    texts = [p.get("text") for p in content if isinstance(p, Mapping) and p.get("type") == "text"]
                    return "".join(t for t in texts if isinstance(t, str))
                return content
    raise ValueError(f"{where}: expected a string or a list of chat messages with an assistant message")


def dataset_column(kwargs: Mapping[str, Any], name: str, n: int) -> list:
    if name not in kwargs or kwargs[name] is None:
        raise KeyError(
            f"reward needs the dataset column {name!r} (one entry per completion); got columns {sorted(kwargs)}"
        )
    values = list(kwargs[name])
    if len(values) != n:
        raise ValueError(f"column {name!r} has {len(values)} entries for {n} completions")
    return values


def parse_completions(completions: Sequence[Any], kwargs: Mapping[str, Any]) -> list[ParsedAnswer]:
    """Parse each completion once, in its row's ``answer_format`` (default paper)."""
    n = len(completions)
    fmts = kwargs.get("answer_format")
    if fmts is None or isinstance(fmts, str):
        fmts = [fmts] * n
    elif len(fmts) != n:
        raise ValueError(f"column 'answer_format' has {len(fmts)} entries for {n} completions")
    return [
        parse_answer(completion_text(c, f"completion {i}"), get_format(f))
        for i, (c, f) in enumerate(zip(completions, fmts))
    ]


def _same_value(a: Any, b: Any) -> bool:
    """Whether two column values are equal plain lists/dicts (never raises on odd types)."""
    if a is b:
        return True
    if type(a) is not type(b) or not isinstance(a, (list, tuple, dict)):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):  # e.g. lists holding numpy arrays
        return False


def ground_truths(kwargs: Mapping[str, Any], n: int) -> list[GroundTruth]:
    """Convert every row's ground truth; a row equal to the one before reuses its result.

    GRPOTrainer repeats each prompt's row for its ``num_generations`` consecutive
    completions, so this converts each distinct row once (about 40 us saved per repeat).
    """
    spans, tubes, sizes = (dataset_column(kwargs, c, n) for c in ("gt_span", "gt_tube", "frame_size"))
    out: list[GroundTruth] = []
    prev_row: tuple = ()
    for i, row in enumerate(zip(spans, tubes, sizes)):
        if prev_row and all(_same_value(x, y) for x, y in zip(row, prev_row)):
            out.append(out[-1])
        else:
            out.append(ground_truth(*row, where=f"row {i}"))
        prev_row = row
    return out
