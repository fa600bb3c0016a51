"""stvg_lab.checkpoints.checkpoint_fingerprint: what changes a checkpoint's fingerprint and what does not."""

from __future__ import annotations

import pytest

from stvg_lab import checkpoints
from stvg_lab.checkpoints import checkpoint_fingerprint


def make(folder, files):
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


BASE = {"config.json": b"{}", "model.safetensors": b"weights" * 10, "sub/tokenizer.json": b"tok"}
CASES = [
    # (id, files, same fingerprint as BASE)
    ("identical copy", dict(BASE), True),
    ("one weight byte", {**BASE, "model.safetensors": b"weightS" + b"weights" * 9}, False),
    ("a config changed", {**BASE, "config.json": b'{"a": 1}'}, False),
    ("a file added", {**BASE, "provenance.json": b"{}"}, False),
    ("a file renamed", {"config2.json": b"{}", **{k: v for k, v in BASE.items() if k != "config.json"}}, False),
    ("a file moved into a subfolder", {**{k: v for k, v in BASE.items() if k != "config.json"}, "sub/config.json": b"{}"}, False),
]


@pytest.mark.parametrize("files, same", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fingerprint_cases(tmp_path, files, same):
    a = checkpoint_fingerprint(make(tmp_path / "a", BASE))
    b = checkpoint_fingerprint(make(tmp_path / "b", files))
    assert (a == b) is same and len(a) == 16


def test_large_files_count_by_their_ends(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "FINGERPRINT_FULL_BYTES", 8)
    monkeypatch.setattr(checkpoints, "_FINGERPRINT_END_BYTES", 4)
    ref = checkpoint_fingerprint(make(tmp_path / "a", {"w": b"HEAD" + b"m" * 20 + b"TAIL"}))
    assert checkpoint_fingerprint(make(tmp_path / "b", {"w": b"HEAD" + b"x" * 20 + b"TAIL"})) == ref  # the middle is not read
    assert checkpoint_fingerprint(make(tmp_path / "c", {"w": b"HEAD" + b"m" * 20 + b"TAIl"})) != ref
    assert checkpoint_fingerprint(make(tmp_path / "d", {"w": b"HEAD" + b"m" * 21 + b"TAIL"})) != ref  # the size counts


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        checkpoint_fingerprint(tmp_path / "nope")


def test_written_after_compares_a_result_with_the_weights(tmp_path):
    import os

    from stvg_lab.checkpoints import written_after

    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"w")
    os.utime(tmp_path / "ck" / "model.safetensors", (100, 100))
    assert not written_after(tmp_path / "score.json", tmp_path / "ck")  # no result yet
    (tmp_path / "score.json").write_text("{}")
    os.utime(tmp_path / "score.json", (200, 200))
    assert written_after(tmp_path / "score.json", tmp_path / "ck")
    os.utime(tmp_path / "ck" / "model.safetensors", (300, 300))  # weights retrained since: the result is stale
    assert not written_after(tmp_path / "score.json", tmp_path / "ck")
