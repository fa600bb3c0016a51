"""stvg_lab.folders.written_whole: a folder appears whole, replaces only when asked, and leaves nothing on error."""

from __future__ import annotations

import pytest

from stvg_lab.folders import written_whole


def _names(root):
    return sorted(p.name for p in root.iterdir())


def test_a_clean_exit_renames_the_folder_into_place(tmp_path):
    with written_whole(tmp_path / "deep" / "out") as tmp:
        assert tmp.name.startswith(".out.partial-") and tmp.parent == tmp_path / "deep"
        (tmp / "a.txt").write_text("a")
    assert _names(tmp_path / "deep") == ["out"] and (tmp_path / "deep" / "out" / "a.txt").read_text() == "a"


@pytest.mark.parametrize("error", [ValueError("bad row"), KeyboardInterrupt()])
def test_an_error_leaves_no_partial_folder_and_the_old_one_as_it_was(tmp_path, error):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(type(error)):
        with written_whole(tmp_path / "out", replace=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise error
    assert _names(tmp_path) == ["out"] and _names(tmp_path / "out") == ["old.txt"]


def test_replace_swaps_and_deletes_the_old_copy(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with written_whole(tmp_path / "out", replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert _names(tmp_path) == ["out"] and _names(tmp_path / "out") == ["new.txt"]


def test_without_replace_a_folder_that_appeared_meanwhile_wins(tmp_path):
    """A concurrent writer finished first: this rename fails (ensure_synthetic then reads the winner's)."""
    with pytest.raises(OSError):
        with written_whole(tmp_path / "out") as tmp:
            (tmp / "mine.txt").write_text("mine")
            (tmp_path / "out").mkdir()
            (tmp_path / "out" / "theirs.txt").write_text("theirs")
    assert _names(tmp_path) == ["out"] and _names(tmp_path / "out") == ["theirs.txt"]
