"""bench/binding_attention.py: which colour a question names, and whose pixels each 28-px cell holds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from stvg_lab.data.synth import PALETTE, shape_mask

BENCH = Path(__file__).resolve().parent.parent / "bench"
_spec = importlib.util.spec_from_file_location("bench_binding_attention", BENCH / "binding_attention.py")
binding = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(binding)


@pytest.mark.parametrize("question, answer, drawn, want", [
    ("What size is the red object?", "small", ["red", "blue"], ("red", "blue")),
    ("What shape is the blue object?", "circle", ["red", "blue"], ("blue", "red")),
    ("What colour is the large object?", "green", ["green", "red"], ("green", "red")),  # the answer names it
    ("In which cell of the 4x4 grid is the red circle?", "12", ["blue", "red"], ("red", "blue")),
])
def test_named_colours(question, answer, drawn, want):
    assert binding.named_colours(question, answer, drawn) == want


@pytest.mark.parametrize("question, answer, drawn", [
    ("What size is the red object?", "small", ["red"]),  # one object drawn
    ("What size is the object?", "small", ["red", "blue"]),  # no colour named
    ("What colour is the large object?", "red", ["green", "blue"]),  # answer not drawn
])
def test_named_colours_refuses_what_is_not_one_of_two(question, answer, drawn):
    with pytest.raises(ValueError, match="one named colour"):
        binding.named_colours(question, answer, drawn)


def test_cell_owners_counts_pixels_per_cell():
    frame = np.zeros((112, 112, 3), np.uint8)
    frame[0:10, 20:40] = PALETTE["red"]  # 10 rows: 8 px in cell 00 (cols 20-27), 12 px in cell 01 (28-39)
    frame[60:62, 100:112] = PALETTE["blue"]  # cell 23
    red, blue = binding.cell_owners(frame, "red", "blue")
    assert red.shape == blue.shape == (4, 4)
    assert red[0, 0] == 80 and red[0, 1] == 120 and red.sum() == 200
    assert blue[2, 3] == 24 and blue.sum() == 24


def test_other_answer_reads_the_other_object():
    frame = np.zeros((112, 112, 3), np.uint8)
    frame[60:90, 0:30][shape_mask("diamond", 30)] = PALETTE["blue"]  # box centre (75, 15): cell 20
    assert binding.other_answer("cell", frame, "blue", "13") == "20"
    assert binding.other_answer("shape", frame, "blue", "circle") == "diamond"
    assert binding.other_answer("colour_by_size", frame, "blue", "red") == "blue"
    assert [binding.other_answer("size", frame, "blue", a) for a in ("small", "large")] == ["large", "small"]
