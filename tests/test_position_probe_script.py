"""bench/position_probe.py: the drawn scenes of the binding questions (which object the word names, what is read off it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from stvg_lab.data.synth import PALETTE, SHAPES, shape_mask

BENCH = Path(__file__).resolve().parent.parent / "bench"
_spec = importlib.util.spec_from_file_location("bench_position_probe", BENCH / "position_probe.py")
probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(probe)


def objects(frame: np.ndarray) -> dict[str, np.ndarray]:
    """colour name -> the boolean mask cropped to its bounding box, for every palette colour drawn (unlit frames)."""
    out = {}
    for name, rgb in PALETTE.items():
        mask = (frame == np.asarray(rgb, np.uint8)).all(-1)
        if mask.any():
            ys, xs = np.nonzero(mask)
            out[name] = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    return out


def side(mask: np.ndarray) -> str:
    return "large" if max(mask.shape) >= 30 else "small"  # SynthConfig: small 16-20 px, large 30-40 px


def drawn_shape(mask: np.ndarray) -> str:
    (name,) = [s for s in SHAPES if mask.shape[0] == mask.shape[1] and np.array_equal(mask, shape_mask(s, mask.shape[0]))]
    return name


@pytest.mark.parametrize("task, question", [
    ("shape", "What shape is the {colour} object?"),
    ("size", "What size is the {colour} object?"),
    ("colour_by_size", "What colour is the {size} object?"),
])
def test_binding_scenes_name_one_object_and_ask_what_differs(task, question):
    for seed in range(20):
        frames, q, answer = probe.scene(np.random.default_rng(seed), task, 0.0, 1, appearance="benchmark")
        assert frames.shape == (8, 112, 112, 3) and (frames == frames[0]).all()  # static
        drawn = objects(frames[0])
        assert len(drawn) == 2, f"seed {seed}: want a target and a distractor of another colour"
        if task == "colour_by_size":
            (target,) = [c for c, m in drawn.items() if c == answer]
            (other,) = [c for c in drawn if c != answer]
            assert q == question.format(size=side(drawn[target]))
            assert side(drawn[other]) != side(drawn[target])
            continue
        (target,) = [c for c in drawn if q == question.format(colour=c)]
        (other,) = [c for c in drawn if c != target]
        if task == "size":
            assert answer == side(drawn[target]) != side(drawn[other])
        else:  # shape_mask touches all four sides of its box, so each crop is exactly one drawn mask
            assert drawn_shape(drawn[target]) == answer != drawn_shape(drawn[other])


@pytest.mark.parametrize("task", ["shape", "size", "colour_by_size"])
def test_binding_tasks_need_the_benchmark_look(task, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["position_probe.py", "--name", "x", "--task", task])
    with pytest.raises(SystemExit):
        probe.main()
    assert "--appearance benchmark" in capsys.readouterr().err


def test_keep_grounding_rows_are_tiny_cpus_sft_rows(tmp_path):
    """--keep-grounding trains on the rows the shipped SFT trained on: same frames, prompt and answer as build_sft_dataset."""
    from stvg_lab.data.synth import generate_synthetic, load_synthetic
    from stvg_lab.train.dataset import ClipCache, build_sft_dataset
    from stvg_lab.train.recipe import load_recipe

    root = generate_synthetic(tmp_path / "data", 3, 2, 0, seed=0, progress=False, workers=1)
    draw, held_out = probe.grounding_rows(str(root), n_held_out=2)
    recipe = load_recipe("tiny_cpu", data=str(root), aux_frame_cells=False)
    cache = ClipCache.from_recipe(recipe)
    for split, rows in (("val", held_out), ("train", [draw(np.random.default_rng(s)) for s in range(6)])):
        ds = build_sft_dataset(load_synthetic(root, split), recipe, cache)
        want = {}
        for i in range(len(ds)):
            user, assistant = ds[i]["messages"]
            want[user["content"][1]["text"]] = (user["content"][0]["video"], assistant["content"][0]["text"])
        assert len(rows) >= 2
        for frames, prompt, answer in rows:
            assert prompt in want, f"{split}: {prompt!r} is not an SFT prompt"
            assert np.array_equal(frames, want[prompt][0]) and answer == want[prompt][1]
            assert answer.startswith("<time>") and "<pred_bbox>" in answer
    assert len({p for _, p, _ in held_out}) == 2  # the first two val clips, not one twice


@pytest.mark.parametrize("flags, message", [
    (["--keep-grounding", "d", "--checkpoint", "c"], "--checkpoint only scores"),
    (["--keep-grounding", "d", "--keep-share", "1.5"], "--keep-share must lie in [0, 1]"),
])
def test_keep_grounding_flags_are_checked(flags, message, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["position_probe.py", "--name", "x", *flags])
    with pytest.raises(SystemExit):
        probe.main()
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("task, message", [
    ("size+cel", "'cel' not among"),
    ("cell+size", "--task size needs --appearance benchmark"),
])
def test_mixed_tasks_are_checked(task, message, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", ["position_probe.py", "--name", "x", "--task", task])
    with pytest.raises(SystemExit):
        probe.main()
    assert message in capsys.readouterr().err
