"""Do an answer's box lists cover its own span? Eq. 4 on saved answers, with the sign of the miss.

The consistency reward (Eq. 4) is 1 only when each box list has exactly one box per frame of the
claimed span. The spatial reward (Eq. 7) scores the frames of the span that the ground truth also
covers, and a frame there without a box scores the per-frame floor; a box after the span's end is
never scored. So a list one box short costs spatial reward as well as R_c, one box long costs R_c
alone, and a policy unsure of the count gains by writing too many (bench/LEARNING.md round 8:
GRPO lengthens the lists and the longer lists break more often in greedy decoding).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from stvg_lab.analysis.swap import TUBES
from stvg_lab.analysis.swap import prediction_field as _field


def box_counts(predictions: Sequence[Any]) -> dict[str, Any]:
    """Box-list length against span length over ``predictions`` (:class:`~stvg_lab.infer.Prediction` or their dicts).

    Returns ``{"n", "parsed", "consistent", "think": {...} | None, "pred": {...}}``: ``parsed`` and
    ``consistent`` are shares of all ``n`` answers (an unparsed answer is never consistent); per
    list, over the parsed answers, ``extra`` is the mean of (boxes - frames in the span), and
    ``short`` / ``exact`` / ``long`` the shares with fewer, as many and more boxes. ``think`` is
    None when no parsed answer has a think list (the no-think format).
    """
    if not predictions:
        raise ValueError("box_counts: no predictions")
    parsed = [p for p in predictions if _field(p, "span") is not None and _field(p, "pred") is not None]
    out: dict[str, Any] = {"n": len(predictions), "parsed": len(parsed) / len(predictions),
                           "consistent": sum(bool(_field(p, "consistent")) for p in parsed) / len(predictions)}
    span_len = [_field(p, "span")[1] - _field(p, "span")[0] + 1 for p in parsed]
    for tube in TUBES:
        diffs = [len(_field(p, tube)) - n for p, n in zip(parsed, span_len) if _field(p, tube) is not None]
        if not diffs:
            out[tube] = None
            continue
        d = np.asarray(diffs)
        out[tube] = {"extra": float(d.mean()), "short": float((d < 0).mean()), "exact": float((d == 0).mean()), "long": float((d > 0).mean())}
    return out
