"""Folders that appear whole or not at all (the synthetic benchmark, shipped and averaged checkpoints).

A reader that finds a half-written dataset or checkpoint folder (a run killed mid-write, a disk
full) would load it and fail far from the cause, or worse, not fail. Writers build the folder
under a hidden name beside its destination and rename it into place only when it is complete.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def written_whole(dest: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a new empty folder ``.<name>.partial-<id>`` beside ``dest`` to write into.

    On a clean exit it is renamed to ``dest``. With ``replace`` an existing ``dest`` is first renamed
    aside and deleted after the swap, so ``dest`` is never missing in between; without it the rename
    fails (OSError) if ``dest`` appeared meanwhile, e.g. written by a concurrent process, which the
    caller may then read. On any error (KeyboardInterrupt included) the partial folder is removed
    and ``dest`` is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if replace and dest.exists():
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            dest.rename(old)
            tmp.rename(dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
