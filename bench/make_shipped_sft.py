"""Train the CPU stand-in's SFT checkpoint and ship it in the package (stvg_lab/assets/checkpoints/tiny_cpu_sft).

    OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_sft.py            # ~15 min on one core

Steps: the default synthetic benchmark (``stvg-lab data synth``: 3,000/50/100 clips, seed 0) in
``--data`` (generated when missing), ``run_sft`` with the ``tiny_cpu`` recipe unchanged, then
:func:`stvg_lab.train.shipped.export_checkpoint` with the command, wall time and final loss in
``provenance.json``. ``--from-run`` exports an SFT run that already finished (its ``recipe.yaml``
must be ``tiny_cpu``'s apart from paths and logging), skipping the training.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--out", default="runs/shipped_sft", help="SFT run directory")
    ap.add_argument("--from-run", default=None, help="export this finished SFT run directory instead of training")
    ap.add_argument("--dest", default=None, help="default: the package's shipped checkpoint folder")
    ap.add_argument("--note", default=None, help="free text kept in provenance.json (e.g. where the run's data came from)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from stvg_lab.data.synth import ensure_synthetic
    from stvg_lab.train.logging import read_log
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.shipped import SHIPPED_DIR, export_checkpoint, sft_recipe_differences
    from stvg_lab.train.sft import run_sft

    ensure_synthetic(args.data, progress=True)  # the default benchmark (3,000/50/100 clips, seed 0)
    shipped = load_recipe("tiny_cpu")
    t0 = time.time()
    if args.from_run:
        run_dir = Path(args.from_run)
        used = load_recipe(run_dir / "recipe.yaml")
        diff = sft_recipe_differences(used.to_dict(), shipped.to_dict())
        if diff:
            sys.exit(f"{run_dir}/recipe.yaml differs from tiny_cpu in {diff}; retrain without --from-run")
        wall = None
        if used.seed != shipped.seed:
            sys.exit(f"{run_dir} used seed {used.seed}; the shipped checkpoint is seed {shipped.seed}")
    else:
        run_dir = Path(args.out)
        run_sft(shipped.replace(data=args.data, output_dir=str(run_dir)))
        wall = round(time.time() - t0, 1)
    losses = [r["loss"] for r in read_log(run_dir) if "loss" in r]
    extra = {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_sft.py" + (f" --from-run {args.from_run}" if args.from_run else ""),
        "train_wall_s": wall,
        "final_loss": losses[-1] if losses else None,
        "note": args.note,
    }
    dest = export_checkpoint(run_dir / "final", args.data, args.dest or SHIPPED_DIR / "tiny_cpu_sft", extra)
    logging.getLogger("ship").info("shipped %s (%s)", dest, json.dumps(extra))


if __name__ == "__main__":
    main()
