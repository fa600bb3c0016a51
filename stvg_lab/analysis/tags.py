"""m_tIoU and m_vIoU per value of one difficulty tag (``n_distractors``, ``event``, VidSTG's ``qtype``, ...).

Why: a benchmark's mean hides where a model fails. On the synthetic ``spread`` set a long SFT doubled
m_vIoU on one-object clips while clips with distractors gained a third (bench/LEARNING.md round 14):
the stand-in finds a shape, not yet the one the sentence names. This splits any evaluation by a tag
that :mod:`stvg_lab.evaluate` keeps in each ``per_sample.jsonl`` row (``row["tags"]``, from
``TAG_KEYS``), so the same question can be asked of a real dataset's tags.

The means are those of :func:`stvg_lab.metrics.evaluate` restricted to each group: an unparsed answer
is in its group with tIoU and vIoU 0 (the evaluator writes 0 for it), so the groups' means weighted by
``n`` give the overall m_tIoU / m_vIoU back. Rows without the tag are grouped under ``None``.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

KEYS = ("tIoU_pred", "vIoU_pred")


def tag_order(values: Iterable[Any]) -> list[Any]:
    """Tag values sorted within their type (False < True, 0 < 1 < 2, strings alphabetically), None last."""
    return sorted(values, key=lambda v: (v is None, str(type(v)), v if v is not None else 0))


def tag_means(rows: Iterable[Mapping[str, Any]], tag: str) -> dict[Any, dict[str, float]]:
    """``{tag value: {"n", "m_tIoU", "m_vIoU"}}`` over ``per_sample.jsonl`` rows, values in sorted order.

    A row without ``tIoU_pred`` / ``vIoU_pred`` is an error naming its position and id: these are the
    evaluator's rows or not. A value of None for them (no prediction) counts as 0, as the metric does.
    """
    groups: dict[Any, list[tuple[float, float]]] = {}
    for i, row in enumerate(rows, 1):
        missing = [k for k in KEYS if k not in row]
        if missing:
            raise ValueError(f"per-sample row {i} (id {row.get('id')!r}) has no {missing}; "
                             "expected the rows of stvg_lab.evaluate's per_sample.jsonl")
        value = (row.get("tags") or {}).get(tag)
        groups.setdefault(value, []).append((float(row["tIoU_pred"] or 0.0), float(row["vIoU_pred"] or 0.0)))
    order = tag_order(groups)
    return {v: {"n": len(groups[v]), "m_tIoU": sum(t for t, _ in groups[v]) / len(groups[v]),
                "m_vIoU": sum(x for _, x in groups[v]) / len(groups[v])} for v in order}
