"""stvg_lab.data.layout: the data-folder layouts of data/README.md, on the real-format fixtures."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stvg_lab.data.layout import detect_dataset, load_split

FIXTURES = Path(__file__).parent / "fixtures" / "formats"


@pytest.fixture
def hcstvg_v2(tmp_path):
    root = tmp_path / "hcstvg_v2"
    (root / "anno_v2").mkdir(parents=True)
    (root / "videos").mkdir()
    shutil.copy(FIXTURES / "hcstvg_v2_raw.json", root / "anno_v2" / "val_v2.json")
    for key in ("12_fixtureAAAA01.mp4", "7_fixtureBBBB02.mkv", "3_fixtureCCCC03.mp4"):
        (root / "videos" / key).write_bytes(b"")  # the loader checks existence, not content
    return root


@pytest.fixture
def vidstg(tmp_path):
    root = tmp_path / "vidstg"
    (root / "annotations").mkdir(parents=True)
    shutil.copy(FIXTURES / "vidstg_raw_annotations.json", root / "annotations" / "test_annotations.json")
    shutil.copytree(FIXTURES / "vidor" / "validation", root / "vidor" / "annotation" / "validation")
    for vid in ("9990000001", "9990000002", "9990000003"):
        (root / "videos" / "0000").mkdir(parents=True, exist_ok=True)
        (root / "videos" / "0000" / f"{vid}.mp4").write_bytes(b"")
    return root


def test_hcstvg_v2_layout(hcstvg_v2):
    assert detect_dataset(hcstvg_v2) == "hcstvg-v2"
    samples = load_split(hcstvg_v2, "val")
    assert [s.id for s in samples] == ["12_fixtureAAAA01", "7_fixtureBBBB02", "3_fixtureCCCC03"]
    assert samples[0].span_frames == (120, 164)  # official convention, 0-based


def test_hcstvg_v2_test_split_is_refused_with_the_reason(hcstvg_v2):
    # v2's test split (query_v2.json) has no ground truth
    with pytest.raises(ValueError, match="evaluate on val"):
        load_split(hcstvg_v2, "test")


def test_vidstg_layout_uses_vidor_validation_for_test(vidstg):
    assert detect_dataset(vidstg) == "vidstg"
    samples = load_split(vidstg, "test")
    assert len(samples) == 6 and {s.extras["qtype"] for s in samples} == {"declarative", "interrogative"}


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda root: None, "not found"),  # no folder at all
        (lambda root: root.mkdir(), "none of the known layouts"),  # an empty folder
        (lambda root: (root / "anno_v2").mkdir(parents=True), "val_v2.json not found"),  # layout, no file
    ],
)
def test_missing_pieces_are_named(tmp_path, make, match):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(FileNotFoundError, match=match):
        load_split(root, "val")
