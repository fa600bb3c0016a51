"""Which words of the sentence do a model's answers read? (stvg_lab.analysis.word_reliance)

    .venv/bin/python bench/word_reliance.py --data data/one_attribute \
        shipped=stvg_lab/assets/checkpoints/tiny_cpu_sft more=runs/sft/final     # NAME=checkpoint; ~5 s a model on 200 clips

On every clip of ``--split`` with a distractor that differs from the target in one attribute alone
(all of them on ``stvg-lab data synth --preset one_attribute``), the target's SFT target is scored
teacher-forced under its own sentence and under the sentence that names that distractor (one word, or
the motion phrase, changed), with the same frames. The table gives, per attribute, how many nats per
digit the distractor's sentence costs the span and the pred boxes: > 0 when the model reads that word,
~0 when it answers the same whichever object the word picks. ``--json`` keeps the full numbers.
bench/LEARNING.md round 16 has what it found.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="NAME=checkpoint folder")
    ap.add_argument("--data", type=Path, default=Path("data/one_attribute"))
    ap.add_argument("--split", default="test")
    ap.add_argument("--n", type=int, default=None, help="the split's first N clips (default: all)")
    ap.add_argument("--json", type=Path, default=None, help="write {name: word_gaps(...)} here")
    args = ap.parse_args()

    from stvg_lab.analysis.word_reliance import gap_table, word_gaps
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.model import load_model
    from stvg_lab.train.recipe import trained_answer_format

    samples = load_synthetic(args.data, args.split)[: args.n]
    results = {}
    for spec in args.models:
        name, _, folder = spec.partition("=")
        if not folder:
            raise SystemExit(f"{spec!r}: give NAME=CHECKPOINT")
        model, processor = load_model(folder, device="cpu")
        # the prompt and answers it was trained on
        results[name] = word_gaps(model, processor, samples, args.data, trained_answer_format(folder, "compact"))
    print(f"{args.data} {args.split}: {len(samples)} clips; nats per digit that the distractor's sentence costs the target's answer\n")
    print(gap_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
