"""Errors and skip reports shared by the real-format annotation loaders.

Every problem with an annotation row is an :class:`AnnotationError` whose message names the
file, the row (HC-STVG: the video key; VidSTG: list index, vid and sentence), the field and
what to do. With ``skip_bad=True`` a loader turns each such error into a :class:`SkippedRow`
and returns a :class:`LoadedSamples`, a ``list`` of samples with the report in ``.skipped``.
A row is either loaded whole or skipped whole; nothing is half-loaded.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

logger = logging.getLogger(__name__)

SKIP_HINT = "fix or remove the row, or pass skip_bad=True to skip it and list it in the result's .skipped"


class AnnotationError(ValueError):
    """A bad annotation file or row; ``file``, ``row`` and ``field`` say where, the message says what to do."""

    def __init__(
        self,
        file: str | Path,
        row: str | None,
        field: str | None,
        problem: str,
        hint: str = SKIP_HINT,
    ) -> None:
        self.file = str(file)
        self.row = row
        self.field = field
        self.problem = problem
        self.hint = hint
        where = [self.file]
        if row is not None:
            where.append(f"row {row}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {problem}" + (f"; {hint}" if hint else ""))

    def to_skipped(self) -> "SkippedRow":
        """This error as one record of a skip report."""
        return SkippedRow(file=self.file, row=self.row, field=self.field, message=str(self))


@dataclass(frozen=True)
class SkippedRow:
    """One row a loader skipped under ``skip_bad=True``."""

    file: str
    row: str | None
    field: str | None
    message: str


class LoadedSamples(list):
    """The samples a loader returned, plus ``skipped``: the rows it left out, in file order."""

    def __init__(self, samples: Iterable[Any] = (), skipped: Iterable[SkippedRow] = ()) -> None:
        super().__init__(samples)
        self.skipped: list[SkippedRow] = list(skipped)


def finish_loading(path: Path, samples: list[Any], skipped: list[SkippedRow], what: str) -> LoadedSamples:
    """Wrap ``samples`` with their skip report, and log a warning when rows were skipped."""
    if skipped:
        logger.warning(
            "%s: skipped %d bad %s (loaded %d samples); see .skipped on the result for file, row, field and reason",
            path,
            len(skipped),
            what,
            len(samples),
        )
    return LoadedSamples(samples, skipped)


def read_json(path: str | Path, row: str | None = None, what: str = "annotation file") -> Any:
    """Parse the JSON file at ``path``; invalid JSON raises :class:`AnnotationError` with its line and column.

    ``row`` names the annotation row that needed this file (a VidOR box file is read for a
    VidSTG entry), so the message points back to it. A missing file raises FileNotFoundError.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} not found; check the path (see README 'Data placement')")
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(
            path,
            row,
            None,
            f"{what} is not valid JSON at line {e.lineno} column {e.colno} ({e.msg})",
            "re-download or repair the file; a truncated download is the usual cause",
        ) from None
