"""bench/vision_readout.py: the ridge readout, its IoU, the one-object filter and the model's own boxes; rows from a tiny model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
_spec = importlib.util.spec_from_file_location("bench_vision_readout", BENCH / "vision_readout.py")
readout = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readout)


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6))
    w = rng.normal(size=(6, 4))
    assert np.allclose(readout.ridge(x, x @ w, 1e-9), w, atol=1e-6)
    # a heavy penalty shrinks the weights towards 0
    assert np.abs(readout.ridge(x, x @ w, 1e6)).max() < 0.01


@pytest.mark.parametrize("pred, gt, want", [
    ([[0, 0, 1, 1]], [[0, 0, 1, 1]], 1.0),
    ([[0, 0, 1, 1]], [[0.5, 0, 1.5, 1]], 1 / 3),  # half the width overlaps: 0.5 / 1.5
    ([[0, 0, 1, 1], [2, 2, 3, 3]], [[0, 0, 1, 1], [0, 0, 1, 1]], 0.5),  # a miss scores 0
    ([[1, 0, 0, 1]], [[0, 0, 1, 1]], 0.0),  # x2 < x1: no area
])
def test_mean_iou(pred, gt, want):
    assert readout.mean_iou(np.array(pred, float), np.array(gt, float)) == pytest.approx(want)


def test_one_object_keeps_clips_without_distractors():
    clips = [SimpleNamespace(id=i, extras={"n_distractors": n}) for i, n in enumerate([0, 1, 0, 2])]
    assert [s.id for s in readout.one_object(clips)] == [0, 2]


def test_own_boxes_scores_the_answers_on_the_rows_they_cover(tmp_path):
    rows = [{"id": "a", "error": None, "pred": {"1": [0, 0, 50, 50], "2": [0, 0, 100, 100]}},
            {"id": "b", "error": "no_time", "pred": None}]
    path = tmp_path / "predictions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    keys = [("a", 1), ("a", 2), ("a", 3), ("b", 1)]  # a's frame 3 has no box; b did not parse
    gt = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0, 0, 1, 1], [0, 0, 1, 1]])
    got = readout.own_boxes(path, keys, gt, {"a": (100, 100), "b": (100, 100)})
    assert got == {"iou": pytest.approx((1 + 0.25) / 2), "covered": 0.5}


def test_object_cell_features_take_the_token_of_the_box_centre():
    hidden, g = 2, 2  # a 2 x 2 grid of tokens, 2 features each: token c holds (10c, 10c + 1)
    row = np.concatenate([np.array([[10 * c, 10 * c + 1] for c in range(g * g)], float).ravel(), [0.0, 1.0]])
    x = np.stack([row, row])[None]  # (1 layer, 2 rows, 10)
    # (box in frame units) -> its cell: centre (0.75, 0.25) is column 1 of row 0 (token 1); (0.25, 0.9) row 1, column 0 (token 2)
    y = np.array([[0.6, 0.1, 0.9, 0.4], [0.1, 0.8, 0.4, 1.0]])
    got = readout.object_cell_features(x, y, hidden)
    assert got.shape == (1, 2, hidden + 1)
    assert got[0].tolist() == [[10, 11, 1], [20, 21, 1]]


def test_classify_accuracy_separates_a_separable_code_and_not_noise():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=400)
    x = np.concatenate([np.eye(4)[labels] + 0.05 * rng.normal(size=(400, 4)), np.ones((400, 1))], axis=1)
    assert readout.classify_accuracy(x[:300], labels[:300], x[300:], labels[300:], 4) == 1.0
    noise = np.concatenate([rng.normal(size=(400, 4)), np.ones((400, 1))], axis=1)
    assert readout.classify_accuracy(noise[:300], labels[:300], noise[300:], labels[300:], 4) < 0.45


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from stvg_lab.data.synth import generate_synthetic, load_synthetic
    from stvg_lab.model import build_tiny_model, load_model

    tmp = tmp_path_factory.mktemp("readout")
    generate_synthetic(tmp / "data", 2, 1, 1, seed=0, progress=False, workers=1)
    model, processor = load_model(build_tiny_model(tmp / "tiny", seed=0), device="cpu")
    return model, processor, load_synthetic(tmp / "data", "train")


def test_video_rows_from_a_tiny_model(tiny):
    from stvg_lab.video import load_clip, tube_to_model

    model, processor, samples = tiny
    x, y, keys = readout.readout_rows(model, processor, samples)["video"]
    spans = [tube_to_model(s, load_clip(s).frame_numbers, load_clip(s).size)[0] for s in samples]
    assert keys == [(s.id, k) for s, (a, b) in zip(samples, spans) for k in range(a, b + 1)]
    cfg = model.config.text_config
    assert x.shape[:2] == (cfg.num_hidden_layers + 1, len(keys)) and y.shape == (len(keys), 4)
    assert np.all(x[:, :, -1] == 1) and set(np.unique(x[:, :, -2])) <= {0.0, 1.0}  # bias, parity
    assert np.all((0 <= y) & (y <= 1)) and np.all(y[:, 2] > y[:, 0])


def test_video_rows_are_the_prompts_alone(tiny):
    # one teacher-forced forward serves video and answer rows: the causal model's video states must not see the answer
    import torch

    from stvg_lab.model import build_model_inputs
    from stvg_lab.task import prompt_text
    from stvg_lab.video import load_clip

    model, processor, samples = tiny
    x, _, keys = readout.readout_rows(model, processor, samples[:1])["video"]
    clip = load_clip(samples[0])
    inputs = build_model_inputs(processor, clip.frames, prompt_text(samples[0], clip, "compact"))
    with torch.no_grad():
        last = model(**inputs, output_hidden_states=True).hidden_states[-1][0, inputs["input_ids"][0] == model.config.video_token_id]
    k = keys[0][1]
    cells = last.reshape(int(inputs["video_grid_thw"][0, 0]), -1, last.shape[-1])[k // 2].reshape(-1).numpy()
    assert np.allclose(x[-1, 0, :-2], cells, atol=1e-5)


@pytest.mark.parametrize("tube", ["think", "pred"])
def test_answer_rows_take_one_row_per_box_at_the_token_before_its_digits(tiny, tube):
    model, processor, samples = tiny
    rows = readout.readout_rows(model, processor, samples)
    x, y, keys = rows[tube]
    _, boxes, video_keys = rows["video"]
    assert keys == video_keys  # the same (sample, frame) rows as the video's
    assert np.allclose(y, boxes)  # the true box, whatever the list writes (think: the grid-snapped one)
    assert x.shape == (model.config.text_config.num_hidden_layers + 1, len(keys), model.config.text_config.hidden_size + 1)
    assert len({tuple(r) for r in x[-1, :, :8]}) == len(keys)  # each box read at its own position


def test_layer_table_has_a_row_per_layer_and_scores_a_perfect_readout_1():
    rng = np.random.default_rng(1)
    y = np.sort(rng.uniform(size=(30, 2, 2)), axis=1).reshape(30, 4)  # [[x1, y1], [x2, y2]] sorted: x1 < x2, y1 < y2
    x = 1000 * np.stack([np.concatenate([y, np.ones((30, 1))], axis=1)] * 2)  # (2 layers, 30, 5): the box, scaled past λ 0.1
    table = readout.layer_table(x, y, x, y, firsts=[0, 5]).splitlines()
    assert len(table) == 4 and table[2].startswith("| 0 | 1.000 / 1.000 / 1.000 |")
