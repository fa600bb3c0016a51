"""stvg_lab.analysis.reliance: own-video vs swapped-video answer loss."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from stvg_lab.analysis.reliance import video_reliance
from stvg_lab.data.synth import generate_synthetic, load_synthetic
from stvg_lab.model import build_tiny_model, load_model


@pytest.fixture(scope="module")
def tiny_and_samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliance")
    path = build_tiny_model(root / "tiny")
    model, processor = load_model(path, device="cpu")
    data = generate_synthetic(root / "data", 0, 0, 3, seed=0, progress=False, workers=1)
    return model, processor, load_synthetic(data, "test")


def test_a_random_model_reacts_to_the_pixels(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    r = video_reliance(model, samples, "compact", processor=processor)
    assert r["n"] == 3 and np.isfinite([r["own"], r["swapped"]]).all()
    assert r["gap"] == pytest.approx(r["swapped"] - r["own"])
    assert r["gap"] != 0.0  # different frames reach the loss
    assert not model.training  # left as it was (load_model gives eval mode)


def test_identical_videos_give_no_gap(tiny_and_samples):
    # every sample points at the same mp4: the swap changes nothing, the gap is exactly 0
    model, processor, samples = tiny_and_samples
    same = [replace(s, video=samples[0].video, tube=samples[0].tube, query=samples[0].query) for s in samples]
    r = video_reliance(model, same, "compact", processor=processor)
    assert r["gap"] == 0.0 and r["own"] == r["swapped"]


def test_a_model_that_ignores_video_gives_no_gap(tiny_and_samples):
    # zero the vision merger's output layer: every video token becomes the same vector
    model, processor, samples = tiny_and_samples
    layer = model.model.visual.merger.mlp[-1]
    saved = (layer.weight.detach().clone(), None if layer.bias is None else layer.bias.detach().clone())
    try:
        with torch.no_grad():
            layer.weight.zero_()
        r = video_reliance(model, samples, "compact", processor=processor)
        assert r["gap"] == pytest.approx(0.0, abs=1e-6)
    finally:
        with torch.no_grad():
            layer.weight.copy_(saved[0])


def test_errors_name_the_problem(tiny_and_samples):
    model, processor, samples = tiny_and_samples
    with pytest.raises(ValueError, match="at least 2"):
        video_reliance(model, samples[:1], "compact", processor=processor)
    with pytest.raises(ValueError, match="processor"):
        video_reliance(model, samples, "compact")
