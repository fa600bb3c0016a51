"""What do GRPO's samples win over the greedy answer: another span, another object, or box jitter? (stvg_lab.analysis.rollouts)

    OMP_NUM_THREADS=1 .venv/bin/python bench/group_anatomy.py --out bench/out/anatomy/shipped                 # the shipped SFT, ~5 min on one core
    OMP_NUM_THREADS=1 .venv/bin/python bench/group_anatomy.py --model RUN/final --out bench/out/anatomy/grpo  # a GRPO run's end

For ``--n`` clips of ``--split`` (train: the prompts GRPO ranks), the model's greedy answer and ``--generations``
answers sampled at ``--temperature`` (GRPO's group, the stand-in's rollout settings by default), each scored by
the reward functions (``score_completion``: Eq. 3-10 against the clip's reward columns, as in training) and
compared with its clip's greedy answer (``sample_difference``: same answer, same objects with other boxes,
another object in some frame, another span). Prints, per kind, the share of samples, how often they score
above the greedy answer and by how much (total reward and its spatial term), and what kind of sample is the
best of each group when one beats the greedy answer. Answers are cached in ``--out`` (``greedy.jsonl``,
``sample<k>.jsonl``); the rows in ``rows.jsonl``. Sampling here is ``stvg_lab.infer.predict``'s (HF generate
at ``temperature``, top-p 1), the sampler GRPO's rollouts use on CPU. bench/LEARNING.md round 25 has what it found.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint (default: the shipped tiny_cpu_sft)")
    ap.add_argument("--data", type=Path, default=Path("data/synthetic"))
    ap.add_argument("--split", default="train")
    ap.add_argument("--n", type=int, default=64, help="clips (the split's first n)")
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.3)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    import torch

    from stvg_lab.analysis.rollouts import KINDS, REWARD_TERMS, anatomy_rows, best_sample_kinds, kind_table
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.infer import predict
    from stvg_lab.model import load_model
    from stvg_lab.train.recipe import trained_answer_format
    from stvg_lab.train.shipped import shipped_checkpoint

    torch.set_num_threads(1)
    model_path = Path(args.model) if args.model else shipped_checkpoint()
    samples = load_synthetic(args.data, args.split)[: args.n]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "args.json").write_text(json.dumps({**vars(args), "model": str(model_path), "data": str(args.data), "out": str(args.out)}, indent=1))
    fmt = trained_answer_format(model_path, "compact")  # the prompt and answers it was trained on
    model, processor = load_model(model_path)
    greedy = predict(model, processor, samples, fmt, out_path=args.out / "greedy.jsonl", progress=False)
    groups = [predict(model, processor, samples, fmt, do_sample=True, temperature=args.temperature, seed=k,
                      out_path=args.out / f"sample{k}.jsonl", progress=False) for k in range(args.generations)]

    rows = anatomy_rows(samples, greedy, groups, args.data, fmt)
    with open(args.out / "rows.jsonl", "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)

    print(f"{model_path} on {len(samples)} {args.split} clips of {args.data}, {args.generations} samples each at t {args.temperature}; "
          "d: a sample's reward minus its clip's greedy answer's\n")
    print("| kind | samples | % | % above greedy (total) | mean d total | mean abs d total | mean d spatial | mean d temporal |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    tables = {r: kind_table(rows, r) for r in REWARD_TERMS}
    for kind, m in tables["total"].items():
        print(f"| {kind} | {m['n']} | {100 * m['share']:.0f} | {100 * m['beats']:.0f} | {m['gain']:+.3f} | {m['abs_gain']:.3f} | "
              f"{tables['spatial'][kind]['gain']:+.3f} | {tables['temporal'][kind]['gain']:+.3f} |")
    best = best_sample_kinds(rows)
    print("\nGroups whose best sample beats the greedy answer, by that sample's kind (%): "
          + ", ".join(f"{k} {100 * best[k]:.0f}" for k in (*KINDS, "none") if k in best))
    moved = [r for r in rows if r["kind"] in ("object", "span+object")]
    if moved:
        to_target = sum(r["to_target"] for r in moved) / max(1, sum(r["switched"] for r in moved))
        print(f"Samples that box another object: {sum(r['switched'] for r in moved) / len(moved):.1f} of "
              f"{sum(r['shared'] for r in moved) / len(moved):.1f} shared frames switched on average, {100 * to_target:.0f} % of them onto the target")
    kept = [r for r in rows if r["kind"] == "boxes" and r["box_iou"] is not None]
    if kept:
        print(f"Samples with the greedy objects and other boxes: mean IoU with the greedy boxes {sum(r['box_iou'] for r in kept) / len(kept):.3f}; "
              "by that IoU (samples, % above greedy, mean d total, mean abs d total):")
        for lo, hi in ((0.0, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)):
            part = [r for r in kept if lo <= r["box_iou"] < hi]
            if part:
                d = [r["d_total"] for r in part]
                print(f"  IoU [{lo:.1f}, {min(hi, 1.0):.1f}{')' if hi < 1 else ']'}: {len(part)}, {100 * sum(x > 0 for x in d) / len(d):.0f} %, "
                      f"{sum(d) / len(d):+.3f}, {sum(map(abs, d)) / len(d):.3f}")


if __name__ == "__main__":
    main()
