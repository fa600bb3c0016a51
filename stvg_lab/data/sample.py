"""The one sample type every loader returns, and its conversions.

A :class:`Sample` holds the ground truth in *original* video coordinates: frame numbers
are 0-based decoded-frame indices and boxes are absolute pixels ``[x1, y1, x2, y2]``.
Mapping to the model's sampled-frame indices and resized coordinates is
``stvg_lab.video``'s job.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable


@dataclass
class Sample:
    id: str
    video: str | None  # path of the video file; None when no video_dir was given
    query: str
    fps: float
    num_frames: int
    width: int
    height: int
    tube: dict[int, list[float]]  # original frame number -> [x1, y1, x2, y2] pixels
    dataset: str = ""  # "hcstvg-v1", "hcstvg-v2", "vidstg", "synthetic"
    extras: dict[str, Any] = field(default_factory=dict)  # qtype, category, difficulty tags...

    @property
    def span_frames(self) -> tuple[int, int]:
        """First and last frame of the tube, inclusive."""
        return min(self.tube), max(self.tube)

    @property
    def span_seconds(self) -> tuple[float, float]:
        """``[first / fps, (last + 1) / fps)``: the time covered by the tube's frames."""
        first, last = self.span_frames
        return first / self.fps, (last + 1) / self.fps

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; tube keys become strings, as JSON requires."""
        d = asdict(self)
        d["tube"] = {str(k): [float(v) for v in box] for k, box in sorted(self.tube.items())}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Sample":
        d = dict(d)
        d["tube"] = {int(k): [float(v) for v in box] for k, box in d["tube"].items()}
        return cls(**d)

    def to_row(self) -> dict[str, Any]:
        """Arrow-friendly row: the tube as parallel lists, extras as a JSON string."""
        frames = sorted(self.tube)
        return {
            "id": self.id,
            "video": self.video,
            "query": self.query,
            "fps": float(self.fps),
            "num_frames": int(self.num_frames),
            "width": int(self.width),
            "height": int(self.height),
            "tube_frames": frames,
            "tube_boxes": [[float(v) for v in self.tube[f]] for f in frames],
            "dataset": self.dataset,
            "extras": json.dumps(self.extras, sort_keys=True),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Sample":
        return cls(
            id=row["id"],
            video=row["video"],
            query=row["query"],
            fps=float(row["fps"]),
            num_frames=int(row["num_frames"]),
            width=int(row["width"]),
            height=int(row["height"]),
            tube={int(f): [float(v) for v in b] for f, b in zip(row["tube_frames"], row["tube_boxes"])},
            dataset=row.get("dataset", ""),
            extras=json.loads(row.get("extras") or "{}"),
        )


def to_dataset(samples: Iterable[Sample]):
    """A Hugging Face ``datasets.Dataset`` with one row per sample (see :meth:`Sample.to_row`)."""
    import datasets

    return datasets.Dataset.from_list([s.to_row() for s in samples])


def from_dataset(ds) -> list[Sample]:
    return [Sample.from_row(r) for r in ds]


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> Path:
    """Write samples as JSONL atomically (a temp file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as f:
        for s in samples:
            f.write(json.dumps(s.to_dict()) + "\n")
    tmp.replace(path)
    return path


def read_jsonl(path: str | Path) -> list[Sample]:
    path = Path(path)
    out = []
    with path.open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Sample.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not a valid sample record ({e})") from e
    return out
