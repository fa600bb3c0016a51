"""What identifies a checkpoint's weights, for caches keyed by a checkpoint's path.

The shipped SFT is replaced in place (bench/make_shipped_sft.py), and a user retrains into the same
``final/``: a cache that knows only the path (the grid's runs, an evaluation's ``predictions.jsonl``)
would go on serving results of the old weights. :func:`checkpoint_fingerprint` tells them apart.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FINGERPRINT_FULL_BYTES = 64 * 2**20  # files up to this size are hashed whole; larger ones by their ends
_FINGERPRINT_END_BYTES = 2**20


def checkpoint_fingerprint(checkpoint: str | Path) -> str:
    """A short hash of a checkpoint folder's files, so caches keyed by a path notice new weights there.

    Every regular file counts by its relative path and size, and by its bytes: whole up to
    ``FINGERPRINT_FULL_BYTES`` (the CPU stand-in: one 3 MB file), else its first and last MiB, so a
    multi-GB checkpoint is fingerprinted in milliseconds. Two large files of the same size that differ
    only in the middle would collide; a training step changes every tensor, the first ones included.
    Raises FileNotFoundError naming a missing folder.
    """
    root = Path(checkpoint)
    if not root.is_dir():
        raise FileNotFoundError(f"checkpoint folder {root} does not exist")
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        size = path.stat().st_size
        digest.update(f"{path.relative_to(root).as_posix()}\0{size}\0".encode())
        with path.open("rb") as f:
            if size <= FINGERPRINT_FULL_BYTES:
                for block in iter(lambda: f.read(2**20), b""):
                    digest.update(block)
            else:
                digest.update(f.read(_FINGERPRINT_END_BYTES))
                f.seek(size - _FINGERPRINT_END_BYTES)
                digest.update(f.read(_FINGERPRINT_END_BYTES))
    return digest.hexdigest()[:16]


def written_after(result: str | Path, checkpoint: str | Path) -> bool:
    """Whether the file ``result`` exists and was written after ``checkpoint``'s weights (``model.safetensors``).

    The bench scripts' caches of a checkpoint's scores: a result older than the weights scored other weights.
    """
    result = Path(result)
    return result.is_file() and result.stat().st_mtime > (Path(checkpoint) / "model.safetensors").stat().st_mtime
