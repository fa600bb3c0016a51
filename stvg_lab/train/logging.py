"""Per-step training logs in the run directory: ``log.jsonl`` (one JSON object a line) and ``log.csv``.

:class:`JsonlLogCallback` is a ``transformers.TrainerCallback``; SFT and GRPO both use it. Every
``on_log`` event (each ``logging_steps``, plus the end-of-training summary) appends one record:
the trainer's logs dict (``loss``, ``learning_rate``, ``grad_norm``, GRPO's ``reward``,
``rewards/<name>/mean``, ``kl``, ...) with ``step`` (optimizer steps), ``epoch``, ``time`` (Unix
seconds) and ``elapsed`` (seconds since this process started training). ``log.csv`` is rewritten
each time with the union of the columns seen so far, so a spreadsheet or pandas reads it
without the JSON.

Resuming: records past the checkpoint's step (written after the last save by a run that was then
stopped) would be repeated by the resumed run, so at ``on_train_begin`` they are dropped from both
files (with an INFO line saying how many): the log then tells one consistent trajectory.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

LOG_JSONL = "log.jsonl"
LOG_CSV = "log.csv"
_FIRST_COLUMNS = ("step", "epoch", "time", "elapsed")


def _plain(value: Any) -> Any:
    """A JSON-safe scalar: tensors and numpy numbers become Python numbers, NaN/inf stay floats."""
    if hasattr(value, "item") and callable(value.item):
        try:
            value = value.item()
        except (ValueError, RuntimeError):  # a tensor with more than one element
            return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def read_log(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``run_dir/log.jsonl`` in order ([] when the file does not exist).

    A line that is not valid JSON (a run killed mid-write) raises ValueError naming the line.
    """
    path = Path(run_dir) / LOG_JSONL
    if not path.is_file():
        return []
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: line {i} is not valid JSON ({e}); delete that line to read the rest") from e
    return records


def metric_change(records: list[dict[str, Any]], key: str, fraction: float = 0.2) -> tuple[float, float]:
    """The mean of ``key`` over the first and the last ``fraction`` of the records that log it.

    For a GRPO run's trend in one column (``rewards/temporal_reward/mean``, ``kl``, ...): the
    first and last fifth, because single logged steps of 2 prompts x 8 rollouts are noisy.
    ValueError naming ``key`` when no record has it.
    """
    rows = [r for r in records if key in r]
    if not rows:
        raise ValueError(f"no logged record has a {key!r}")
    k = max(1, int(len(rows) * fraction))
    mean = lambda rs: sum(float(r[key]) for r in rs) / len(rs)  # noqa: E731
    return mean(rows[:k]), mean(rows[-k:])


def reward_change(records: list[dict[str, Any]], fraction: float = 0.2) -> dict[str, float]:
    """What a GRPO run did to its reward: the mean ``reward`` of the first and last ``fraction`` of logged steps.

    Also the mean ``frac_reward_zero_std`` (TRL: groups whose completions all scored alike, which
    give no advantage). Only records with a ``reward`` count; ValueError when there are none.
    """
    first, last = metric_change(records, "reward", fraction)
    rows = [r for r in records if "reward" in r]
    zero = [float(r["frac_reward_zero_std"]) for r in rows if "frac_reward_zero_std" in r]
    return {"first": first, "last": last,
            "frac_reward_zero_std": sum(zero) / len(zero) if len(zero) == len(rows) else float("nan")}


def write_csv(records: list[dict[str, Any]], path: str | Path) -> Path:
    """Write ``records`` as CSV: step/epoch/time/elapsed first, then other columns in first-seen order."""
    columns = [c for c in _FIRST_COLUMNS if any(c in r for r in records)]
    for r in records:
        columns.extend(k for k in r if k not in columns)
    path = Path(path)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for r in records:
            writer.writerow({k: json.dumps(v) if isinstance(v, list) else v for k, v in r.items()})
    tmp.replace(path)
    return path


class JsonlLogCallback(TrainerCallback):
    """Append each ``on_log`` record to ``run_dir/log.jsonl`` and rewrite ``run_dir/log.csv``.

    Only the main process writes. Records are kept in memory too (``self.records``), so the
    CSV rewrite does not re-read the JSON.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.records: list[dict[str, Any]] = []
        self._start = time.time()

    @property
    def jsonl_path(self) -> Path:
        return self.run_dir / LOG_JSONL

    @property
    def csv_path(self) -> Path:
        return self.run_dir / LOG_CSV

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.time()
        if not state.is_world_process_zero:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        previous = read_log(self.run_dir)
        kept = [r for r in previous if r.get("step", 0) <= state.global_step]
        if len(kept) < len(previous):
            logger.info(
                "%s: dropped %d record(s) past step %d (logged after the checkpoint this run resumes from)",
                self.jsonl_path, len(previous) - len(kept), state.global_step,
            )
            self.jsonl_path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        self.records = kept
        if kept:
            write_csv(self.records, self.csv_path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.time()
        record: dict[str, Any] = {
            "step": int(state.global_step),
            "epoch": None if state.epoch is None else float(state.epoch),
            "time": now,
            "elapsed": now - self._start,
        }
        # NaN/inf are written as Python's json writes them (NaN, Infinity): not strict JSON, but
        # json.loads and pandas read them back as floats, and a NaN loss must not be hidden.
        record.update({key: _plain(value) for key, value in logs.items()})
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with self.jsonl_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.records.append(record)
        write_csv(self.records, self.csv_path)
