#!/usr/bin/env bash
# bench/accelerate_cpu.sh [STEPS]   (from the repository root; default 2 steps)
#
# GRPO under `accelerate launch` with 2 CPU processes (gloo): the same entry point users scale to
# many GPUs with stvg_lab/recipes/accelerate/{multi_gpu,zero2,zero3,fsdp}.yaml. Builds a 4-clip
# synthetic set and the tiny stand-in in a temp folder, runs STEPS optimizer steps with 2 prompts
# x 2 generations per process, then checks that the log has every step, that both processes
# agreed on the step count (trainer_state.json) and that the final checkpoint loads.
# Prints the wall time and the per-step times; writes bench/out/accelerate_cpu.json.
set -euo pipefail

STEPS="${1:-2}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
ACCELERATE="$ROOT/.venv/bin/accelerate"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/stvg_accelerate_cpu.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path
from stvg_lab.data.synth import generate_synthetic
from stvg_lab.model import build_tiny_model
work = Path(sys.argv[1])
generate_synthetic(work / "synth", 4, 2, 2, seed=0, progress=False, workers=1)
build_tiny_model(work / "init", seed=0)
EOF

START=$(date +%s.%N)
"$ACCELERATE" launch --config_file "$ROOT/stvg_lab/recipes/accelerate/cpu_2proc.yaml" \
    -m stvg_lab.train.grpo --recipe tiny_cpu --init-from "$WORK/init" --out "$WORK/run" --max-steps "$STEPS" \
    --set "data=$WORK/synth" --set per_device_batch_size=2 --set num_generations=2 \
    --set max_completion_length=16 --set save_steps=1 --set logging_steps=1 \
    --set warmup_ratio=0.0 --set lr_scheduler_type=constant
END=$(date +%s.%N)

mkdir -p "$ROOT/bench/out"
"$PY" - "$WORK/run" "$STEPS" "$START" "$END" "$ROOT/bench/out/accelerate_cpu.json" <<'EOF'
import json, math, sys
from pathlib import Path
from stvg_lab.model import load_model
from stvg_lab.train.logging import read_log
run, steps, start, end, out = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
records = [r for r in read_log(run) if "loss" in r]
assert [r["step"] for r in records] == list(range(1, steps + 1)), [r["step"] for r in records]
assert all(math.isfinite(r["loss"]) and math.isfinite(r["kl"]) for r in records)
state = json.loads((run / f"checkpoint-{steps}" / "trainer_state.json").read_text())
assert state["global_step"] == steps
load_model(run / "final", device="cpu")
result = {
    "processes": 2, "steps": steps, "wall_s": round(end - start, 1),
    "step_time_s": [round(r["step_time"], 2) for r in records],
    "completions_per_step": 4, "frac_reward_zero_std": [r["frac_reward_zero_std"] for r in records],
}
Path(out).write_text(json.dumps(result, indent=2) + "\n")
print(json.dumps(result))
EOF
