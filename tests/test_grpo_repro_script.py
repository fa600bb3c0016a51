"""bench/grpo_repro.py: where two runs' logs part, on literal log rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
_spec = importlib.util.spec_from_file_location("bench_grpo_repro", BENCH / "grpo_repro.py")
repro = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(repro)

ROW1 = {"step": 1, "loss": 2.0e-5, "reward": 0.5, "time": 100.0, "elapsed": 2.0}
ROW2 = {"step": 2, "loss": 4.0e-5, "reward": 0.6, "time": 102.0, "elapsed": 4.0}


@pytest.mark.parametrize("a, b, identical, first, loss_rel", [
    # the wall clock differs between any two runs: not a difference
    ([ROW1, ROW2], [{**ROW1, "time": 7.0, "elapsed": 9.0}, {**ROW2, "train_runtime": 3.0}], True, None, 0.0),
    # the last bit of a loss at step 2: found, with its relative size
    ([ROW1, ROW2], [ROW1, {**ROW2, "loss": 4.4e-5}], False, {"step": 2, "column": "loss", "a": 4.0e-5, "b": 4.4e-5}, 0.1 / 1.1),
    # the first difference is the earliest step's, whatever comes after
    ([ROW1, ROW2], [{**ROW1, "reward": 0.7}, {**ROW2, "loss": 5.0e-5}], False, {"step": 1, "column": "reward", "a": 0.5, "b": 0.7}, 0.2),
    # a column one run lacks is a difference
    ([ROW1], [{**ROW1, "kl": 0.1}], False, {"step": 1, "column": "kl", "a": None, "b": 0.1}, 0.0),
    # a run that stopped early is not identical, though its rows agree
    ([ROW1, ROW2], [ROW1], False, None, 0.0),
])
def test_compare(a, b, identical, first, loss_rel):
    got = repro.compare(a, b)
    assert got["identical"] is identical
    assert got["first_difference"] == first
    assert got["loss_max_rel"] == pytest.approx(loss_rel)
    assert got["rows"] == [len(a), len(b)]


def test_read_log_skips_blank_lines(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps(ROW1) + "\n\n" + json.dumps(ROW2) + "\n", encoding="utf-8")
    assert repro.read_log(tmp_path) == [ROW1, ROW2]
