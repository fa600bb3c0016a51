"""Which object do a model's greedy answers box on clips with distractors? (stvg_lab.analysis.which_object)

    .venv/bin/python bench/which_object.py --data data/synthetic \
        shipped=runs/demo/eval/sft grpo=runs/demo/eval/grpo_full          # NAME=an evaluation folder; seconds, no model

Each evaluation folder holds ``predictions.jsonl`` (``stvg-lab evaluate``, ``bench/grpo_sweep.py``'s
``eval/``) of the synthetic ``--split``. For every sampled frame of every ground-truth span, the pred box
goes to the visible object it overlaps most; the table gives, per model, the share of frames boxed on
the target, on a distractor, on no object, or with no box written, by what tells the most confusable
visible distractor from the target (one attribute, or 2+), and on frames with no distractor in view.
bench/LEARNING.md round 15 has what it found.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+", help="NAME=evaluation folder (holds predictions.jsonl)")
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--split", default="test")
    args = ap.parse_args()

    from stvg_lab.analysis.which_object import OUTCOMES, outcome_table, which_object_rows
    from stvg_lab.data.synth import ATTRIBUTES, load_synthetic
    from stvg_lab.infer import read_predictions

    samples = load_synthetic(args.data, args.split)
    print(f"{args.data} {args.split}: {len(samples)} clips, {sum(s.extras['n_distractors'] > 0 for s in samples)} with distractors; "
          "% of span frames (sampled) whose pred box overlaps most ... ; IoU with the target\n")
    print("| model | distractor in view differs in | frames (clips) | " + " | ".join(OUTCOMES) + " | IoU |")
    print("|---|---|---:|" + "---:|" * (len(OUTCOMES) + 1))
    tables = {}
    for spec in args.runs:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"{spec!r}: give NAME=FOLDER")
        rows = which_object_rows(read_predictions(Path(folder) / "predictions.jsonl"), samples, args.data)
        tables[name] = rows
        for group, m in outcome_table(rows).items():
            label = "no distractor in view" if group is None else group
            print(f"| {name} | {label} | {m['n']} ({m['clips']}) | " + " | ".join(f"{100 * m[o]:.0f}" for o in OUTCOMES) + f" | {100 * m['iou']:.1f} |")
    # each attribute alone: the frames with a distractor in view, split by whether it differs in that attribute
    print("\nFrames with a distractor in view: % boxed on the target / on a distractor, when the most confusable one differs in the attribute / shares it (frames, clips)\n")
    print("| model | " + " | ".join(f"{a}: differs | shared" for a in ATTRIBUTES) + " |")
    print("|---|" + "---:|---:|" * len(ATTRIBUTES))
    for name, rows in tables.items():
        seen = [r for r in rows if r["differ"] is not None]
        cells = []
        for a in ATTRIBUTES:
            t = outcome_table(seen, lambda r, a=a: a in r["differ"])
            cells += [f"{100 * t[v]['target']:.0f} / {100 * t[v]['distractor']:.0f} ({t[v]['n']}, {t[v]['clips']})" if v in t else "–" for v in (True, False)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
