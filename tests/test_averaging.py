"""stvg_lab.train.averaging: the mean of checkpoints' weights, on literal tensors and on the stand-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stvg_lab.train.averaging import AVERAGED_FROM, average_checkpoints


def _checkpoint(path: Path, tensors: dict[str, torch.Tensor], files: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    save_file(tensors, path / "model.safetensors")
    for name, text in {"config.json": "{}", "optimizer.pt": "state", **(files or {})}.items():
        (path / name).write_text(text)
    return path


def test_the_mean_of_each_tensor_in_its_own_dtype(tmp_path):
    a = _checkpoint(tmp_path / "run" / "checkpoint-10", {"w": torch.tensor([0.0, 2.0]), "h": torch.tensor([1.0], dtype=torch.bfloat16),
                                                        "pos": torch.tensor([3, 4])})
    b = _checkpoint(tmp_path / "run" / "checkpoint-20", {"w": torch.tensor([1.0, 4.0]), "h": torch.tensor([2.0], dtype=torch.bfloat16),
                                                        "pos": torch.tensor([3, 4])})
    (tmp_path / "run" / "recipe.yaml").write_text("answer_format: compact\n")
    out = average_checkpoints([a, b], tmp_path / "avg")
    got = load_file(out / "model.safetensors")
    assert got["w"].tolist() == [0.5, 3.0] and got["h"].dtype == torch.bfloat16 and got["h"].item() == 1.5
    assert got["pos"].tolist() == [3, 4]  # integer buffers are copied, equal in every input
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "recipe.yaml", AVERAGED_FROM} <= names and "optimizer.pt" not in names  # the run's recipe, no trainer state
    record = json.loads((out / AVERAGED_FROM).read_text())
    assert [c["path"] for c in record["checkpoints"]] == [str(a), str(b)] and record["recipe"] == str(tmp_path / "run" / "recipe.yaml")


def test_float64_accumulation_keeps_what_float32_sums_lose(tmp_path):
    """Mean of 1e8, 1 and -1e8 is 1/3; summed in float32, 1e8 + 1 rounds to 1e8 and the mean comes out 0."""
    from stvg_lab.train.averaging import _average_file

    paths = []
    for k, v in enumerate((1e8, 1.0, -1e8)):
        paths.append(tmp_path / f"{k}.safetensors")
        save_file({"w": torch.tensor([v], dtype=torch.float32)}, paths[-1])
    assert _average_file(paths)["w"].item() == pytest.approx(1 / 3, rel=1e-6)


@pytest.mark.parametrize("second, message", [
    ({"w": torch.zeros(2), "extra": torch.zeros(1)}, r"not the tensors of .*differs in \['extra'\]"),
    ({"w": torch.zeros(3)}, r"tensor 'w' is torch.float32 \(3,\)"),
    ({"w": torch.zeros(2, dtype=torch.float16)}, "tensor 'w' is torch.float16"),
])
def test_checkpoints_of_other_architectures_are_refused_by_tensor(tmp_path, second, message):
    a = _checkpoint(tmp_path / "a", {"w": torch.zeros(2)})
    b = _checkpoint(tmp_path / "b", second)
    with pytest.raises(ValueError, match=message):
        average_checkpoints([a, b], tmp_path / "avg")
    assert not (tmp_path / "avg").exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # nothing half-written


def test_refusals(tmp_path):
    a = _checkpoint(tmp_path / "a", {"w": torch.zeros(1), "n": torch.tensor([1])})
    b = _checkpoint(tmp_path / "b", {"w": torch.zeros(1), "n": torch.tensor([2])})
    lora = tmp_path / "lora"
    lora.mkdir()
    (lora / "adapter_model.safetensors").write_text("")
    cases = [
        ([a], "avg1", ValueError, "at least two"),
        ([a, a], "avg2", ValueError, "listed twice"),
        ([a, b], "avg3", ValueError, "integer tensor 'n' differs"),
        ([a, tmp_path / "none"], "avg4", FileNotFoundError, "none: no model.safetensors"),
        ([lora, a], "avg5", ValueError, "LoRA adapter"),
        ([a, b], "a", FileExistsError, "exists"),
    ]
    for inputs, out, error, message in cases:
        with pytest.raises(error, match=message):
            average_checkpoints(inputs, tmp_path / out)


def test_sharded_checkpoints_are_averaged_shard_by_shard(tmp_path):
    def sharded(path: Path, scale: float) -> Path:
        path.mkdir()
        save_file({"a": torch.full((2,), scale)}, path / "model-00001-of-00002.safetensors")
        save_file({"b": torch.full((1,), 2 * scale)}, path / "model-00002-of-00002.safetensors")
        index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
        (path / "model.safetensors.index.json").write_text(json.dumps(index))
        return path

    out = average_checkpoints([sharded(tmp_path / "x", 1.0), sharded(tmp_path / "y", 3.0)], tmp_path / "avg")
    assert load_file(out / "model-00001-of-00002.safetensors")["a"].tolist() == [2.0, 2.0]
    assert load_file(out / "model-00002-of-00002.safetensors")["b"].tolist() == [4.0]
    assert (out / "model.safetensors.index.json").is_file()


def test_the_average_of_the_stand_in_loads_and_answers(tmp_path):
    """Two copies of the stand-in, one with its weights shifted: the average loads through load_model with the mean."""
    from stvg_lab.model import build_tiny_model, load_model

    a = build_tiny_model(tmp_path / "a")
    b = tmp_path / "b"
    b.mkdir()
    for f in a.iterdir():
        if f.is_file():
            (b / f.name).write_bytes(f.read_bytes())
    shifted = {k: v + 1.0 if v.is_floating_point() else v for k, v in load_file(a / "model.safetensors").items()}
    save_file(shifted, b / "model.safetensors", metadata={"format": "pt"})
    out = average_checkpoints([a, b], tmp_path / "avg")
    model, _ = load_model(out, device="cpu")
    ref, _ = load_model(a, device="cpu")
    for (name, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        assert torch.allclose(p, q + 0.5, atol=1e-6), name
