"""Eq. 10's terms on the greedy *test* answers of a sweep: does the reward GRPO raises track the metrics?

    .venv/bin/python bench/heldout_reward.py --root bench/out/grpo_sweep_spread --data data/synthetic_spread

For every ``<root>/start`` and ``<root>/<variant>/seed<k>`` that ``bench/grpo_sweep.py`` scored, the
saved greedy answers (``eval/predictions.jsonl``) are scored as evaluations score them since session 29
(``stvg_lab.evaluate.answer_rewards``: the reward functions' own code, against each test clip's ground
truth on the frames and size the model saw). One yardstick for every row: the paper's ``full``
rewards, λk = 0.5, whatever the run trained on. A row whose reward rises while its m_tIoU / m_vIoU fall
is a run that learned what the reward pays and the metrics do not (bench/LEARNING.md round 9: the box
count). Nothing is trained; a few seconds per row. Evaluations written since then hold the same numbers
in ``metrics.json`` (``reward``) and per clip, for ``stvg-lab compare --metrics R_total ...``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TERMS = ("format", "consistency", "temporal", "spatial", "think")


def reward_terms(predictions: Sequence[Any], samples: Mapping[str, Any]) -> dict[str, float]:
    """Mean of each reward term and of Eq. 10's weighted sum over ``predictions`` (``stvg_lab.infer.Prediction``).

    ``samples``: the test split by id. An answer that does not parse scores 0 on every term.
    """
    from stvg_lab.evaluate import answer_rewards

    if not predictions:
        raise ValueError("reward_terms: no answers")
    missing = [p.id for p in predictions if p.id not in samples]
    if missing:
        raise ValueError(f"{len(missing)} answers for clips not in the test split, e.g. {missing[0]}")
    scored = [answer_rewards(p, samples[p.id]) for p in predictions]
    return {k: sum(r[k] for r in scored) / len(scored) for k in (*TERMS, "total")}


def table(rows: dict[str, list[dict[str, float]]]) -> str:
    """Markdown: one row per name, mean ± sample std over its seeds (reward terms, then the metrics in %)."""
    from stvg_lab.analysis.tables import format_cell, mean_spread

    cols = [*TERMS, "total"]
    lines = ["| model | seeds | " + " | ".join(f"R {c}" if c != "total" else "R (Eq. 10)" for c in cols)
             + " | m_tIoU | m_vIoU |", "|---|---:|" + "---:|" * (len(cols) + 2)]
    for name, rs in rows.items():
        cells = [format_cell(*mean_spread([r[c] for r in rs])[:2], scale=1.0, digits=3) for c in cols]
        cells += [format_cell(*mean_spread([r[m] for r in rs])[:2], scale=100.0, digits=1) for m in ("m_tIoU", "m_vIoU")]
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default="bench/out/grpo_sweep", help="a bench/grpo_sweep.py root")
    ap.add_argument("--data", default="data/synthetic", help="the dataset its runs were scored on")
    args = ap.parse_args()

    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.infer import read_predictions

    by_id = {s.id: s for s in load_synthetic(args.data, "test")}
    root = Path(args.root)

    def row(scored: Path) -> dict[str, float]:
        metrics = json.loads((scored / "score.json").read_text(encoding="utf-8"))
        try:
            terms = reward_terms(read_predictions(scored / "eval" / "predictions.jsonl"), by_id)
        except ValueError as e:
            raise ValueError(f"{scored}/eval/predictions.jsonl: {e}") from None
        return {**terms, "m_tIoU": metrics["pred_m_tIoU"], "m_vIoU": metrics["pred_m_vIoU"]}

    rows = {"start (SFT)": [row(root / "start")]}
    for seed_dir in sorted(root.glob("*/seed*/score.json")):
        rows.setdefault(seed_dir.parent.parent.name, []).append(row(seed_dir.parent))
    print(f"Greedy test answers of {root} scored by Eq. 10 (`full`, λk = 0.5), mean ± sample std over seeds:\n")
    print(table(rows))


if __name__ == "__main__":
    main()
