"""The ``stvg-lab`` console script.

    stvg-lab demo                     # the main job: the whole recipe on the synthetic default
    stvg-lab data synth --out data/synthetic --n-train 300 --seed 0

Each sub-command is a thin shell over a function of the package, so notebooks call the same
code. Heavy imports (torch, transformers) happen inside the command that needs them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

Command = Callable[[argparse.Namespace], int]


def _data_synth(args: argparse.Namespace) -> int:
    from stvg_lab.data.synth import SynthConfig, generate_synthetic

    config = SynthConfig()
    root = generate_synthetic(
        args.out,
        n_train=args.n_train,
        n_val=args.n_val,
        n_test=args.n_test,
        seed=args.seed,
        config=config,
        overwrite=args.overwrite,
    )
    print(f"synthetic STVG benchmark written to {root}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from stvg_lab.pipeline import DemoConfig, run_demo

    report = run_demo(DemoConfig(out_dir=Path(args.out), data_dir=Path(args.data), quick=args.quick, seed=args.seed))
    print(report.read_text() if report.suffix == ".md" else f"report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stvg-lab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole recipe on the synthetic default (CPU)")
    demo.add_argument("--out", default="runs/demo", help="output folder for the report and runs")
    demo.add_argument("--data", default="data/synthetic", help="synthetic dataset folder (generated if missing)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    demo.set_defaults(func=_demo)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="generate the synthetic STVG benchmark")
    synth.add_argument("--out", default="data/synthetic")
    synth.add_argument("--n-train", type=int, default=300)
    synth.add_argument("--n-val", type=int, default=50)
    synth.add_argument("--n-test", type=int, default=100)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    synth.set_defaults(func=_data_synth)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        # Bad input (a file, a row, a field): one clear line, no traceback.
        print(f"stvg-lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
