"""Make the CPU stand-in's SFT checkpoint and ship it in the package (stvg_lab/assets/checkpoints/tiny_cpu_sft).

    OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_sft.py            # curriculum + polish rounds + grounding + clips stages, ~4.5 h on one core
    OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_sft.py --from-shipped runs/ground   # the grounding stage alone (see below)
    OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_sft.py --clips-from-shipped runs/clips   # the clips stage alone (see below)
    OMP_NUM_THREADS=1 .venv/bin/python bench/make_shipped_sft.py --from-run runs/sft   # export a finished plain tiny_cpu SFT run

Default, four stages, each skipped where its output already exists in ``--root``:

1. ``bench/curriculum.py --seed <tiny_cpu's seed> --data <--data> --root <--root> --min-sft 3`` (the default
   benchmark is generated when missing): the reader stages, then 3 x 2,500 steps of ``tiny_cpu``'s SFT
   (``sft3`` for seed 0; ``result.json`` names the round in ``sft_stage``);
2. ``--polish-rounds`` rounds of ``tiny_cpu_polish`` (the same SFT at lr 3e-4, a fresh cosine cycle each)
   from that round's ``final``, into ``<root>/polish1``, ``polish2``, ...; each round's greedy numbers on the
   50 val clips are kept (``<round>/val50``), which is how the number of rounds was chosen (bench/LEARNING.md round 15);
3. unless ``--no-ground``, one ``tiny_cpu_ground`` stage (the grounding rows alone, lr 1e-3 constant, 18,000
   steps; its ``final`` is the mean of its checkpoints from step 14,000 on, the recipe's ``average_from_step``;
   length and window chosen on the val clips over two seeds, rounds 19-20) from the last round's ``final``,
   into ``<root>/ground``;
4. unless ``--no-clips`` (or ``--no-ground``), one ``tiny_cpu_clips`` stage (the same SFT on a 12,000-clip train
   split of the same benchmark, which it generates where the recipe's ``data`` names it; 10,000 steps, ``final``
   the mean of checkpoints 6,000-10,000; rounds 21-23) from the grounding stage's ``final``, into ``<root>/clips``.

The last stage's ``final`` is exported with :func:`stvg_lab.train.shipped.export_checkpoint`.
``provenance.json`` keeps the command, the recipe the last stage ran, the last polish round's
(``polish_recipe``, when a grounding stage followed), the grounding stage's (``ground_recipe``, when a clips stage followed), the curriculum's (its last SFT round's recipe must be
``tiny_cpu``'s apart from paths, logging and its start checkpoint; each polish round's ``tiny_cpu_polish``'s,
the grounding stage's ``tiny_cpu_ground``'s), each probe stage's final gap, the stage wall times, the
curriculum's own test numbers (``result.json``) and each later stage's wall time, final loss and val numbers.

``--from-shipped RUN`` is stage 3 alone, without re-running the 1.5 h before it; its provenance keeps the
old one's curriculum and polish records. From a shipped checkpoint that ends with its polish rounds (its
weights are the last round's ``final``) it runs the stage into RUN: how the 12,000-step stage shipped in
sessions 21-22 was made. From a shipped checkpoint that is a grounding stage already, RUN must hold that
stage's run (its checkpoint at the shipped length has the shipped weights, byte for byte), which is resumed
to the recipe's length and averaged: how the averaged stage shipped since session 23 was made from round
19's run (bench/LEARNING.md round 21). The replaced stage's record stays in ``ground_replaced``.
A package that ships a clips stage has no grounding stage to continue: remake the chain instead.

``--clips-from-shipped RUN`` is stage 4 alone, from the grounding stage the package ships, into RUN
(how the 6,000-step clips stage shipped in session 24 was made); its provenance keeps the shipped one's records,
its command (``ground_command``) and its weights' sha256 (``ground_sha256``), since the path the stage's
recipe names as its start holds the clips stage's weights once it ships. From a package that ships a clips
stage already, RUN must hold that stage's run (its last checkpoint as the provenance fingerprinted it), which
is resumed to the recipe's length and averaged, the replaced stage's record kept in ``clips_replaced``: how
the 10,000-step stage shipped since session 25 was made from session 24's run (bench/LEARNING.md round 23).

``--from-run`` exports an SFT run that already finished (``stvg-lab train sft``, a fresh stand-in;
its ``recipe.yaml`` must be ``tiny_cpu``'s): the pre-curriculum way, which gives a stand-in that
does not read the frames (bench/LEARNING.md rounds 1-4).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH = Path(__file__).resolve().parent
PROBE_STAGES = ("pre_dark", "solo_tf", "bench_tf")
# Three SFT rounds, not the curriculum's two: on the fixed generator's pixels (round 10) seed 0's second
# round parses 97 % of its val answers but writes too many boxes (64 % long lists on test) and scores
# val m_vIoU 4.7, below the shipped model's 5.9; a third round gives 7.1 (50 val clips; bench/LEARNING.md round 11).
MIN_SFT_ROUNDS = 3
# Polish rounds after them (recipe tiny_cpu_polish), chosen on the 50 val clips over three seeds of the rounds
# (bench/LEARNING.md round 15, which has the table).
POLISH_ROUNDS = 3
N_VAL = 50
# The clips stage's train split: tiny_cpu_clips's data, generated with this many train clips and --data's val
# and test counts and seed, so its first 3,000 clips and its val and test clips are the default's.
CLIPS_TRAIN = 12000


def curriculum_record(root: Path) -> dict:
    """What provenance keeps of a finished curriculum: each probe round's final gap, wall times, test numbers."""
    result = json.loads((root / "result.json").read_text(encoding="utf-8"))
    gaps = {}  # pre_dark, pre_dark_2, ...: the rounds curriculum.py ran
    for log_file in sorted(root.glob("*.jsonl")):
        stage, _, round_ = log_file.stem.rpartition("_")
        if log_file.stem in PROBE_STAGES or (stage in PROBE_STAGES and round_.isdigit()):
            gaps[log_file.stem] = json.loads(log_file.read_text(encoding="utf-8").splitlines()[-1])["gap"]
    keep = ("parse_rate", "pred_m_tIoU", "pred_m_vIoU", "think_m_tIoU", "think_m_vIoU")
    sft = result.get("sft_stage", "sft2")  # results written before the SFT had rounds ran two
    return {
        "root": str(root), "seed": result["seed"], "data": result["data"], "onsets": result.get("onsets"),
        "probe_gaps": gaps, "stage_s": result["stage_s"], "sft_stage": sft, "sft_val_parse": result.get("sft_val_parse"),
        "test": {run: {k: result[run].get(k) for k in keep} for run in (sft, "grpo")},
        "n_test": result["n_test"],
    }


def val_metrics(checkpoint: Path, data: str | Path, out: Path) -> dict:
    """Greedy parse rate and pred m_tIoU / m_vIoU / vIoU@0.3 of ``checkpoint`` on the first :data:`N_VAL` val clips (cached in ``out``)."""
    from stvg_lab.checkpoints import written_after
    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.evaluate import evaluate_model
    from stvg_lab.train.recipe import trained_answer_format

    done = out / "metrics.json"
    if written_after(done, checkpoint):
        m = json.loads(done.read_text(encoding="utf-8"))
    else:
        val = load_synthetic(data, "val")[:N_VAL]
        m = evaluate_model(checkpoint, val, out, trained_answer_format(checkpoint, "compact"), progress=False, resume=False).metrics
    return {"n": m["n"], "parse_rate": 1 - m["parse_failure_rate"], **{f"pred_{k}": m["pred"][k] for k in ("m_tIoU", "m_vIoU", "vIoU@0.3")}}


def sft_stage(run: Path, recipe_name: str, model: Path | str, data: str, seed: int, label: str) -> dict:
    """One SFT stage of ``recipe_name`` from ``model`` into ``run``; returns folder, wall time, final loss, val numbers.

    A stage whose ``final`` exists is kept when its recipe is this one's (same start checkpoint, seed
    and SFT fields), refused otherwise; a stage cut short resumes from its last checkpoint.
    """
    from stvg_lab.train.averaging import AVERAGED_FROM
    from stvg_lab.train.logging import read_log
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.sft import run_sft
    from stvg_lab.train.shipped import sft_recipe_differences

    recipe = load_recipe(recipe_name, model=str(model), data=str(data), seed=seed, output_dir=str(run))
    if (run / "final" / "model.safetensors").is_file():
        diff = sft_recipe_differences(load_recipe(run / "recipe.yaml").to_dict(), recipe.to_dict())
        if diff:
            sys.exit(f"{run}/recipe.yaml differs from {label} {recipe_name} in {diff}; move {run} away to retrain it")
    else:
        run_sft(recipe, resume=run.is_dir())
    log = read_log(run)
    losses = [r["loss"] for r in log if "loss" in r]
    runtime = [r["train_runtime"] for r in log if "train_runtime" in r]  # one per start: a resumed stage has several
    record = {"dir": str(run), "model": str(model), "wall_s": round(sum(runtime)) if runtime else None,
              "final_loss": losses[-1] if losses else None, "val": val_metrics(run / "final", data, run / "val50")}
    averaged = run / "final" / AVERAGED_FROM
    if averaged.is_file():  # the recipe's average_from_step: final is the mean of these checkpoints
        record["averaged_from"] = json.loads(averaged.read_text(encoding="utf-8"))["checkpoints"]
    logging.getLogger("ship").info("%s: %s", run, json.dumps(record["val"]))
    return record


def polish(root: Path, start: Path, rounds: int, data: str, seed: int) -> list[dict]:
    """Rounds ``polish1`` .. ``polish<rounds>`` of ``tiny_cpu_polish``, each from the previous round's ``final``."""
    records, model = [], start
    for k in range(1, rounds + 1):
        run = root / f"polish{k}"
        records.append({"round": f"polish{k}", **sft_stage(run, "tiny_cpu_polish", model, data, seed, "this round's")})
        model = run / "final"
    return records


def ground(run: Path, start: Path | str, data: str, seed: int) -> dict:
    """The grounding stage (``tiny_cpu_ground``: grounding rows alone, lr constant) from ``start`` into ``run``."""
    return {"round": "ground", **sft_stage(run, "tiny_cpu_ground", start, data, seed, "the stage's")}


def clips_data(base: str | Path) -> Path:
    """``tiny_cpu_clips``'s data (:data:`CLIPS_TRAIN` train clips), generated when missing; must be ``base``'s benchmark."""
    from stvg_lab.data.synth import ensure_synthetic, read_manifest
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.shipped import benchmark_differences

    made = read_manifest(base)
    counts = made["counts"]
    root = ensure_synthetic(load_recipe("tiny_cpu_clips").data, CLIPS_TRAIN, counts["val"], counts["test"], seed=made["seed"], progress=True)
    here = read_manifest(root)
    diff = benchmark_differences(made, here) or ("train count" if here["counts"]["train"] != CLIPS_TRAIN else "")
    if diff:
        sys.exit(f"{root}/dataset.json is not {base}'s benchmark with {CLIPS_TRAIN} train clips ({diff} differ); "
                 "move it away to have it generated")
    return root


def clips(run: Path, start: Path | str, data: str | Path, seed: int) -> dict:
    """The clips stage (``tiny_cpu_clips``: the grounding stage's SFT on more clips) from ``start`` into ``run``."""
    return {"round": "clips", "data": str(data), **sft_stage(run, "tiny_cpu_clips", start, data, seed, "the stage's")}


def clips_from_shipped(run: Path, data: str | Path, seed: int) -> tuple[Path, dict]:
    """The clips stage from the grounding stage the package ships, keeping its provenance's records.

    When the package ships the grounding stage, the stage starts from it. When it ships a clips stage
    already, the grounding weights are gone from it: ``run`` must then hold that stage's run, its
    ``checkpoint-<the shipped stage's max_steps>`` the one the provenance fingerprinted when it averaged
    the stage, and the stage is resumed to ``tiny_cpu_clips``'s length as the recipe is now (with its
    averaging; the lr is constant, so this is the longer stage's trajectory). Returns the stage's folder and
    what the new provenance keeps: the shipped records (curriculum, polish rounds, grounding stage and any
    stage it replaced), the grounding stage's recipe, command, commit and weights' sha256 (``ground_recipe``,
    ``ground_command``, ``ground_git_commit``, ``ground_sha256``), the clips stage it replaces
    (``clips_replaced``) and the stage's own record (``clips``).
    """
    from stvg_lab.checkpoints import checkpoint_fingerprint
    from stvg_lab.train.shipped import SHIPPED_DIR, read_provenance

    shipped = SHIPPED_DIR / "tiny_cpu_sft"
    old = read_provenance(shipped)
    if not old.get("ground"):
        sys.exit(f"{shipped} ships no grounding stage; --clips-from-shipped adds the clips stage to a shipped grounding stage only; "
                 "remake the whole chain: bench/make_shipped_sft.py")
    keep = {k: old[k] for k in ("curriculum", "polish", "polish_recipe", "polish_command", "polish_git_commit", "ground", "ground_replaced")
            if k in old}
    if not old.get("clips"):
        keep.update(ground_recipe=old["recipe"], ground_command=old["command"], ground_git_commit=old.get("git_commit"),
                    ground_sha256=sha256(shipped / "model.safetensors"))
        model = os.path.relpath(shipped, Path.cwd())  # the string the stage's recipe records (the repo root: stvg_lab/assets/...)
        return run, {**keep, "clips": clips(run, model, data, seed)}
    last = f"checkpoint-{old['recipe']['max_steps']}"
    fingerprints = {Path(c["path"]).name: c["fingerprint"] for c in old["clips"].get("averaged_from") or []}
    if last not in fingerprints:
        sys.exit(f"{shipped}/provenance.json records no fingerprint of its clips stage's {last}; remake the whole chain: "
                 "bench/make_shipped_sft.py")
    mine = run / last
    if not mine.is_dir() or checkpoint_fingerprint(mine) != fingerprints[last]:
        why = "it has no such checkpoint" if not mine.is_dir() else "its files differ"
        sys.exit(f"{shipped} ships a clips stage already, so the grounding stage it started from is not in the package; "
                 f"--clips-from-shipped {run} needs that stage's run, whose {last} the provenance fingerprinted ({why}); "
                 "or remake the whole chain: bench/make_shipped_sft.py")
    keep.update({k: old.get(k) for k in ("ground_recipe", "ground_command", "ground_git_commit", "ground_sha256")})
    keep["clips_replaced"] = replaced(old, "clips", sha256(shipped / "model.safetensors"))
    # the stage's start as its recipe recorded it (the grounding stage, shipped then)
    return run, {**keep, "clips": clips(run, old["clips"]["model"], data, seed)}


def from_shipped(run: Path, data: str, seed: int) -> tuple[Path, dict]:
    """The grounding stage from the polished checkpoint, keeping the shipped provenance's curriculum and polish records.

    When the package ships the polished checkpoint (its provenance ends with polish rounds) the stage starts
    from it: :func:`export_checkpoint` copied the last polish round's ``final``, so this is the full chain's
    last stage without re-running the curriculum. When the package ships a grounding stage already, the
    polished weights are no longer in it: ``run`` must then be that stage's run folder, its
    ``checkpoint-<the shipped stage's max_steps>`` holding the shipped weights byte for byte, and the stage
    is resumed to ``tiny_cpu_ground``'s length as the recipe is now (with its averaging). Returns the stage's
    folder and what the new provenance keeps: the curriculum and polish records, the polished checkpoint's
    recipe (``polish_recipe``) and command, and the grounding stage it replaces (``ground_replaced``).
    """
    from stvg_lab.train.shipped import SHIPPED_DIR, read_provenance

    shipped = SHIPPED_DIR / "tiny_cpu_sft"
    old = read_provenance(shipped)
    if old.get("clips"):
        sys.exit(f"{shipped} ships a clips stage, so the grounding stage under it is not in the package; "
                 "remake the whole chain: bench/make_shipped_sft.py")
    if not old.get("polish"):
        sys.exit(f"{shipped} has no polish rounds; --from-shipped adds the grounding stage to a polished checkpoint only")
    if not old.get("ground"):
        model = os.path.relpath(shipped, Path.cwd())  # the string the stage's recipe records (the repo root: stvg_lab/assets/...)
        keep = {"curriculum": old["curriculum"], "polish": old["polish"], "polish_recipe": old["recipe"], "polish_command": old["command"],
                "polish_git_commit": old.get("git_commit")}
    else:
        step, shipped_sha = old["recipe"]["max_steps"], sha256(shipped / "model.safetensors")
        mine = run / f"checkpoint-{step}" / "model.safetensors"
        if not mine.is_file() or sha256(mine) != shipped_sha:
            why = "it has no such checkpoint" if not mine.is_file() else "its weights differ"
            sys.exit(f"{shipped} ships a grounding stage already, so the polished checkpoint it started from is not in the package; "
                     f"--from-shipped {run} needs that stage's run, whose checkpoint-{step} holds the shipped weights ({why}); "
                     "or remake the whole chain: bench/make_shipped_sft.py")
        model = old["ground"]["model"]  # the stage's start as its recipe recorded it (the polished checkpoint, shipped then)
        # its command is the polished checkpoint's, then " --no-ground && " and the stage (main() writes it so)
        polish_command, sep, _ = old["command"].partition(" --no-ground && ")
        if not sep:
            sys.exit(f"{shipped}/provenance.json: its command does not name the polished checkpoint's ({old['command']!r})")
        keep = {k: old.get(k) for k in ("curriculum", "polish", "polish_recipe", "polish_git_commit")}
        keep["polish_command"] = polish_command
        keep["ground_replaced"] = replaced(old, "ground", shipped_sha)
    return run, {**keep, "ground": ground(run, model, data, seed)}


def replaced(old: dict, stage: str, weights_sha256: str) -> dict:
    """What a new provenance keeps of the shipped ``stage`` it replaces (``ground_replaced``, ``clips_replaced``)."""
    return {"record": old[stage], "recipe": old["recipe"], "git_commit": old.get("git_commit"), "sha256": weights_sha256}


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/synthetic")
    ap.add_argument("--root", default=None, help="the curriculum's folder (default bench/out/curriculum/seed<k>_synthetic)")
    ap.add_argument("--polish-rounds", type=int, default=None, help=f"tiny_cpu_polish rounds after the curriculum (default {POLISH_ROUNDS}; 0: none)")
    ap.add_argument("--no-ground", action="store_true", help="stop after the polish rounds (the checkpoint shipped before round 19)")
    ap.add_argument("--no-clips", action="store_true", help="stop after the grounding stage (the checkpoint shipped in sessions 21-23)")
    ap.add_argument("--from-shipped", default=None, metavar="RUN",
                    help="only the grounding stage, into RUN, from the polished checkpoint the package ships now; ships its result")
    ap.add_argument("--clips-from-shipped", default=None, metavar="RUN",
                    help="only the clips stage, into RUN, from the grounding stage the package ships now; ships its result")
    ap.add_argument("--from-run", default=None, help="export this finished plain SFT run directory instead")
    ap.add_argument("--dest", default=None, help="default: the package's shipped checkpoint folder")
    ap.add_argument("--note", default=None, help="free text kept in provenance.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.from_run and (args.polish_rounds or args.from_shipped):
        ap.error("--polish-rounds and --from-shipped follow the curriculum; --from-run exports a finished run as it is")
    if args.from_shipped and (args.root or args.polish_rounds is not None or args.no_ground or args.no_clips):
        ap.error("--from-shipped runs the grounding stage alone; --root, --polish-rounds, --no-ground and --no-clips belong to the full chain")
    if args.clips_from_shipped and (args.root or args.polish_rounds is not None or args.no_ground or args.no_clips or args.from_shipped or args.from_run):
        ap.error("--clips-from-shipped runs the clips stage alone; it takes no other stage's flag")
    rounds = POLISH_ROUNDS if args.polish_rounds is None else args.polish_rounds
    if rounds == 0 and not (args.no_ground or args.from_run):
        ap.error("the grounding stage starts from the last polish round; --polish-rounds 0 needs --no-ground")

    from stvg_lab.data.synth import ensure_synthetic
    from stvg_lab.train.logging import read_log
    from stvg_lab.train.recipe import load_recipe
    from stvg_lab.train.shipped import SHIPPED_DIR, export_checkpoint, provenance_differences

    ensure_synthetic(args.data, progress=True)  # the default benchmark (3,000/50/100 clips, seed 0)
    shipped = load_recipe("tiny_cpu")
    prefix = "OMP_NUM_THREADS=1 .venv/bin/python bench/"
    polished, kept, data = None, {}, args.data  # data: the last stage's, which provenance records
    if args.clips_from_shipped:
        data = clips_data(args.data)
        run_dir, kept = clips_from_shipped(Path(args.clips_from_shipped), data, shipped.seed)
        curriculum, polished = kept.pop("curriculum"), kept.pop("polish")
        command = f"{kept['ground_command']} && {prefix}make_shipped_sft.py --clips-from-shipped {args.clips_from_shipped}"
    elif args.from_shipped:
        run_dir, kept = from_shipped(Path(args.from_shipped), args.data, shipped.seed)
        curriculum, polished = kept.pop("curriculum"), kept.pop("polish")
        # the polished checkpoint's own command, which this script now runs with --no-ground, then this stage
        command = f"{kept.pop('polish_command')} --no-ground && {prefix}make_shipped_sft.py --from-shipped {args.from_shipped}"
    elif args.from_run:
        run_dir, curriculum = Path(args.from_run), None
        command = f"{prefix}make_shipped_sft.py --from-run {args.from_run}"
    else:
        root = Path(args.root or f"bench/out/curriculum/seed{shipped.seed}_synthetic")
        cmd = [sys.executable, str(BENCH / "curriculum.py"), "--seed", str(shipped.seed), "--data", args.data, "--root", str(root),
               "--min-sft", str(MIN_SFT_ROUNDS)]
        if subprocess.run(cmd).returncode:
            sys.exit(f"the curriculum failed; its command: {' '.join(cmd)}")
        curriculum = curriculum_record(root)
        run_dir = root / curriculum["sft_stage"]
        command = (f"{prefix}curriculum.py --seed {shipped.seed} --data {args.data} --root {root} --min-sft {MIN_SFT_ROUNDS}"
                   f" && {prefix}make_shipped_sft.py --root {root} --polish-rounds {rounds}"
                   + (" --no-ground" if args.no_ground else " --no-clips" if args.no_clips else ""))
    if not (args.from_shipped or args.clips_from_shipped):  # those checked their stage against its recipe already
        used = load_recipe(run_dir / "recipe.yaml")
        diff = provenance_differences({"recipe": used.to_dict(), "curriculum": curriculum}, shipped.to_dict())
        if diff:
            sys.exit(f"{run_dir}/recipe.yaml differs from tiny_cpu in {diff}; retrain with tiny_cpu.yaml as it is")
        if curriculum is not None:
            curriculum["recipe"] = used.to_dict()
            curriculum["val"] = val_metrics(run_dir / "final", args.data, run_dir / "val50")
            if rounds:
                polished = polish(root, run_dir / "final", rounds, args.data, shipped.seed)
                run_dir = Path(polished[-1]["dir"])
                if not args.no_ground:
                    kept = {"polish_recipe": load_recipe(run_dir / "recipe.yaml").to_dict(),
                            "ground": ground(root / "ground", run_dir / "final", args.data, shipped.seed)}
                    run_dir = root / "ground"
                    if not args.no_clips:
                        data = clips_data(args.data)
                        kept["ground_recipe"] = load_recipe(run_dir / "recipe.yaml").to_dict()
                        kept["clips"] = clips(root / "clips", run_dir / "final", data, shipped.seed)
                        run_dir = root / "clips"
    losses = [r["loss"] for r in read_log(run_dir) if "loss" in r]
    extra = {"command": command, "final_loss": losses[-1] if losses else None, "curriculum": curriculum, "polish": polished, **kept, "note": args.note}
    dest = export_checkpoint(run_dir / "final", data, args.dest or SHIPPED_DIR / "tiny_cpu_sft", extra)
    logging.getLogger("ship").info("shipped %s (%s)", dest, json.dumps(extra))


if __name__ == "__main__":
    main()
