"""stvg_lab.analysis.word_reliance: the target's answer under its own sentence vs a distractor's."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from stvg_lab.analysis.word_reliance import distractor_query, gap_table, word_gaps
from stvg_lab.data.synth import PRESETS, SynthConfig, generate_synthetic, load_synthetic
from stvg_lab.model import build_tiny_model, load_model

RED = {"size": "large", "colour": "red", "shape": "circle", "motion": "left"}

# (distractors, event) -> distractor_query: the first distractor that differs in one attribute alone
CASES = [
    ([], "appear", None),  # no distractor
    ([{**RED, "colour": "blue", "shape": "square"}], "appear", None),  # differs in two: no sentence names it with one word
    ([{**RED, "colour": "blue"}], "appear", ("colour", "the large blue circle that moves left")),
    ([{**RED, "size": "small", "shape": "cross"}, {**RED, "shape": "cross"}], "appear", ("shape", "the large red cross that moves left")),
    ([{**RED, "motion": "down"}], "cross", ("motion", "the large red circle that crosses the frame from top to bottom")),
]


@pytest.mark.parametrize("distractors, event, expected", CASES)
def test_distractor_query(distractors, event, expected):
    sample = SimpleNamespace(extras={"attributes": RED, "distractors": distractors, "template": 0, "event": event})
    assert distractor_query(sample, SynthConfig()) == expected


def test_word_gaps_on_one_attribute_clips(tmp_path):
    path = build_tiny_model(tmp_path / "tiny")
    model, processor = load_model(path, device="cpu")
    data = generate_synthetic(tmp_path / "data", 0, 0, 6, seed=0, progress=False, workers=1, config=PRESETS["one_attribute"])
    samples = load_synthetic(data, "test")
    r = word_gaps(model, processor, samples, data, "compact")
    # every one_attribute clip has a distractor differing in one attribute: each clip counts once
    assert sum(v["clips"] for v in r.values()) == len(samples)
    for attribute, v in r.items():
        segments = {k: g for k, g in v.items() if k != "clips"}
        assert {"time", "pred box 1"} <= set(segments)
        assert all(np.isfinite([g["own"], g["swapped"]]).all() and g["gap"] == pytest.approx(g["swapped"] - g["own"]) for g in segments.values())
    assert any(g["gap"] != 0.0 for v in r.values() for k, g in v.items() if k != "clips")  # a random model reacts to any word
    table = gap_table({"tiny": r})
    assert table.splitlines()[0].startswith("| model |") and "| tiny |" in table
