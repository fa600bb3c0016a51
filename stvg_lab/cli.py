"""The ``stvg-lab`` console script.

    stvg-lab demo                     # the main job: the whole recipe on the synthetic default
    stvg-lab data synth --out data/synthetic --n-train 3000 --seed 0
    stvg-lab train sft --recipe tiny_cpu --out runs/sft
    stvg-lab train grpo --recipe tiny_cpu_grpo --init-from runs/sft/final --out runs/grpo
    stvg-lab evaluate --model runs/grpo/final --data data/synthetic --split test --out runs/eval
    stvg-lab average --out runs/sft/avg runs/sft/checkpoint-1000 runs/sft/checkpoint-1500 runs/sft/checkpoint-2000
    stvg-lab compare --a runs/eval_x0 runs/eval_x1 --b runs/eval_y0 runs/eval_y1   # a - b, bootstrap interval
    stvg-lab compare --a ... --b ... --by n_distractors                           # and per value of a clip tag

Each sub-command is a thin shell over a function of the package, so notebooks call the same
code. Heavy imports (torch, transformers) happen inside the command that needs them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Callable, Sequence

from stvg_lab.data.synth_config import PRESETS

Command = Callable[[argparse.Namespace], int]


def _data_synth(args: argparse.Namespace) -> int:
    from stvg_lab.data.synth import PRESETS, generate_synthetic

    config = PRESETS[args.preset]
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


def _evaluate(args: argparse.Namespace) -> int:
    from stvg_lab.evaluate import evaluate_command
    from stvg_lab.train.recipe import trained_answer_format

    report = evaluate_command(
        args.model,
        args.data,
        split=args.split,
        out=args.out,
        # a checkpoint asked in a format it was never trained on answers nothing parseable
        fmt=args.format or trained_answer_format(args.model, "paper"),
        backend=args.backend,
        max_samples=args.max_samples,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        eval_frames=args.eval_frames,
        train_split=None if args.train_split.lower() == "none" else args.train_split,
        device=args.device,
        resume=not args.no_resume,
    )
    print(report.markdown())
    return 0


def _average(args: argparse.Namespace) -> int:
    from stvg_lab.train.averaging import average_checkpoints

    print(f"averaged checkpoint: {average_checkpoints(args.checkpoints, args.out)}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from stvg_lab.analysis.paired import compare_by_tag, compare_evaluations, difference_table

    options = dict(metrics=args.metrics, tube=args.tube, n_boot=args.n_boot, level=args.level, seed=args.seed)
    named = {"a - b": compare_evaluations(args.a, args.b, **options)}
    if args.by:
        named.update({f"a - b, {k}": v for k, v in compare_by_tag(args.a, args.b, args.by, **options).items()})
    print(difference_table(named), end="")
    return 0


def _train_sft(args: argparse.Namespace) -> int:
    from stvg_lab.train.sft import sft_command

    return sft_command(args)


def _train_grpo(args: argparse.Namespace) -> int:
    from stvg_lab.train.grpo import grpo_command

    return grpo_command(args)


def _demo(args: argparse.Namespace) -> int:
    from stvg_lab.pipeline import DemoConfig, run_demo

    report = run_demo(DemoConfig(out_dir=Path(args.out), data_dir=Path(args.data), quick=args.quick, seed=args.seed,
                                 from_scratch=args.from_scratch, grid_workers=args.grid_workers))
    print(report.read_text() if report.suffix == ".md" else f"report: {report}")
    return 0


def _add_train_parser(sub: argparse._SubParsersAction, name: str, help_text: str, func: Command) -> None:
    from stvg_lab.train.recipe import add_recipe_arguments  # light: no trainer is imported here

    parser = sub.add_parser(name, help=help_text)
    add_recipe_arguments(parser, name)
    parser.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stvg-lab", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the whole recipe on the synthetic default (CPU)")
    demo.add_argument("--out", default="runs/demo", help="output folder for the report and runs")
    demo.add_argument("--data", default="data/synthetic", help="synthetic dataset folder (generated if missing)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke run")
    demo.add_argument("--from-scratch", action="store_true",
                      help="train SFT here (tiny_cpu from a fresh stand-in, ~13 min; it does not learn to read the frames) "
                           "instead of starting from the shipped checkpoint (bench/curriculum.py's)")
    demo.add_argument("--grid-workers", type=int, default=None,
                      help="GRPO runs trained side by side, the CPU threads shared out (default: one per run, at most one per CPU; "
                           "1: one after the other in this process, on its threads; the weights may differ with the thread count)")
    demo.set_defaults(func=_demo)

    ev = sub.add_parser("evaluate", help="predict with a checkpoint and score with TubeDETR's metrics")
    ev.add_argument("--model", required=True, help="checkpoint directory (never downloaded)")
    ev.add_argument("--data", default="data/synthetic", help="dataset folder (layouts in data/README.md)")
    ev.add_argument("--split", default="test")
    ev.add_argument("--out", default="runs/eval")
    ev.add_argument("--format", default=None,
                    help="answer format: paper, compact, no_think, compact_no_think, ... (default: the one --model was trained "
                         "to write, from the recipe.yaml saved with it or, for a trainer's checkpoint-<step>, with its run; else paper)")
    ev.add_argument("--backend", default="hf", choices=["hf", "vllm"])
    ev.add_argument("--max-samples", type=int, default=None)
    ev.add_argument("--batch-size", type=int, default=4, help="1 gives Table 9's per-sample latency")
    ev.add_argument("--max-new-tokens", type=int, default=None, help="default: the longest valid answer")
    ev.add_argument("--eval-frames", default="all", choices=["all", "tubedetr"])
    ev.add_argument("--train-split", default="train", help="split for the trivial baselines ('none' to skip)")
    ev.add_argument("--device", default=None)
    ev.add_argument("--no-resume", action="store_true", help="ask every sample again")
    ev.set_defaults(func=_evaluate)

    avg = sub.add_parser("average", help="the uniform average of several checkpoints' weights (one run's), as a new checkpoint")
    avg.add_argument("checkpoints", nargs="+", help="checkpoint folders, e.g. a run's last checkpoint-<step> folders")
    avg.add_argument("--out", required=True, help="new folder for the averaged checkpoint (must not exist)")
    avg.set_defaults(func=_average)

    from stvg_lab.analysis.paired import COMPARABLE, METRICS, TUBES  # numpy only

    cmp = sub.add_parser("compare", help="arm a minus arm b on the same clips: paired bootstrap over clips and seeds")
    cmp.add_argument("--a", nargs="+", required=True, help="evaluation folders (per_sample.jsonl) of arm a, one per seed")
    cmp.add_argument("--b", nargs="+", required=True, help="evaluation folders of arm b, scored on the same clips")
    cmp.add_argument("--metrics", nargs="+", default=list(METRICS), choices=list(COMPARABLE),
                     help="TubeDETR's metrics (points) and the answers' reward terms R_* (reward units: R_total is Eq. 10)")
    cmp.add_argument("--tube", default="pred", choices=list(TUBES))
    cmp.add_argument("--n-boot", type=int, default=10_000)
    cmp.add_argument("--level", type=float, default=0.95, help="coverage of the interval")
    cmp.add_argument("--seed", type=int, default=0, help="seeds the bootstrap draws")
    cmp.add_argument("--by", default=None, metavar="TAG",
                     help="also per value of this clip tag of per_sample.jsonl (n_distractors, event, small, ...)")
    cmp.set_defaults(func=_compare)

    train = sub.add_parser("train", help="SFT and GRPO").add_subparsers(dest="train_command", required=True)
    _add_train_parser(train, "sft", "supervised fine-tuning on the serialized answers", _train_sft)
    _add_train_parser(train, "grpo", "GRPO with the five STVG-o1 rewards (TRL)", _train_grpo)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    synth = data.add_parser("synth", help="generate the synthetic STVG benchmark")
    synth.add_argument("--out", default="data/synthetic")
    synth.add_argument("--n-train", type=int, default=3000)
    synth.add_argument("--n-val", type=int, default=50)
    synth.add_argument("--n-test", type=int, default=100)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--preset", default="default", choices=list(PRESETS),
                       help="default: the benchmark the CPU stand-in learns; hard: 224 px, 7 s, move events, occluders, flat lighting; "
                            "spread: the default with objects kept off the centre quarter (no constant box scores well); colour_only: sentences naming only the colour, distractors differing only in it; "
                            "one_attribute: the default with 1-2 distractors, each differing from the target in one attribute only")
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
    except (FileNotFoundError, FileExistsError, ValueError, ImportError) as e:
        # Bad input (a file, a row, a field): one clear line, no traceback.
        print(f"stvg-lab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
