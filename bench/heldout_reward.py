"""Eq. 10's terms on the greedy *test* answers of a sweep: does the reward GRPO raises track the metrics?

    .venv/bin/python bench/heldout_reward.py --root bench/out/grpo_sweep_spread --data data/synthetic_spread

For every ``<root>/start`` and ``<root>/<variant>/seed<k>`` that ``bench/grpo_sweep.py`` scored, the
saved greedy answers (``eval/predictions.jsonl``) are scored by the reward functions' own code
(``stvg_lab.rewards.score_completion``), against each test clip's reward columns on the model's frames (``stvg_lab.video.reward_columns`` on the
recipe's ``fps`` / ``max_side`` layout). One yardstick for every row: the paper's ``full`` variant,
λk = 0.5, unit weights, whatever the run trained on. A row whose reward rises while its m_tIoU /
m_vIoU fall is a run that learned what the reward pays and the metrics do not (bench/LEARNING.md
round 9: the box count). Nothing is trained; a few seconds per row.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TERMS = ("format", "consistency", "temporal", "spatial", "think")


def reward_terms(texts: Sequence[str], columns: Sequence[dict[str, Any]], answer_format: str,
                 lambda_k: float = 0.5) -> dict[str, float]:
    """Mean of each reward term and of Eq. 10's weighted sum over ``texts``, each scored against its ``columns``.

    ``columns[i]``: ``gt_span``, ``gt_tube``, ``frame_size`` of answer ``i`` (``reward_columns``).
    Scored by :func:`stvg_lab.rewards.score_completion`, the code of the reward functions; an
    answer that does not parse scores 0 on every term.
    """
    from stvg_lab.rewards import score_completion

    if len(texts) != len(columns) or not texts:
        raise ValueError(f"reward_terms: {len(texts)} answers for {len(columns)} column sets")
    scored = [score_completion(t, c["gt_span"], c["gt_tube"], c["frame_size"], answer_format, lambda_k)
              for t, c in zip(texts, columns)]
    return {k: sum(r[k] for r in scored) / len(scored) for k in (*TERMS, "total")}


def score_dir(eval_dir: Path, by_id: dict[str, dict[str, Any]], answer_format: str) -> dict[str, float]:
    """:func:`reward_terms` of the answers saved in ``eval_dir/predictions.jsonl`` (ids looked up in ``by_id``)."""
    from stvg_lab.infer import read_predictions

    preds = read_predictions(eval_dir / "predictions.jsonl")
    missing = [p.id for p in preds if p.id not in by_id]
    if missing:
        raise ValueError(f"{eval_dir}/predictions.jsonl: {len(missing)} answers for clips not in the test split, e.g. {missing[0]}")
    return reward_terms([p.text for p in preds], [by_id[p.id] for p in preds], answer_format)


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
    ap.add_argument("--recipe", default="tiny_cpu_grpo", help="recipe whose fps, max_side and answer_format the runs used")
    args = ap.parse_args()

    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.train.dataset import clip_layout
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.video import reward_columns

    recipe = load_recipe(args.recipe)
    by_id = {}
    for s in load_synthetic(args.data, "test"):
        layout = clip_layout(s, recipe.fps, recipe.max_side)
        by_id[s.id] = reward_columns(s, layout.frame_numbers, layout.size)
    root = Path(args.root)

    def row(scored: Path) -> dict[str, float]:
        metrics = json.loads((scored / "score.json").read_text(encoding="utf-8"))
        return {**score_dir(scored / "eval", by_id, recipe.answer_format),
                "m_tIoU": metrics["pred_m_tIoU"], "m_vIoU": metrics["pred_m_vIoU"]}

    rows = {"start (SFT)": [row(root / "start")]}
    for seed_dir in sorted(root.glob("*/seed*/score.json")):
        rows.setdefault(seed_dir.parent.parent.name, []).append(row(seed_dir.parent))
    print(f"Greedy test answers of {root} scored by Eq. 10 (`full`, λk = 0.5), mean ± sample std over seeds:\n")
    print(table(rows))


if __name__ == "__main__":
    main()
