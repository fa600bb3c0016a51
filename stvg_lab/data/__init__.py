"""Samples, real-format loaders (HC-STVG v1/v2, VidSTG) and the synthetic benchmark."""

from stvg_lab.data.errors import AnnotationError, LoadedSamples, SkippedRow
from stvg_lab.data.hcstvg import load_hcstvg
from stvg_lab.data.sample import Sample, from_dataset, read_jsonl, to_dataset, write_jsonl
from stvg_lab.data.vidstg import load_vidstg

__all__ = [
    "AnnotationError",
    "LoadedSamples",
    "Sample",
    "SkippedRow",
    "from_dataset",
    "load_hcstvg",
    "load_vidstg",
    "read_jsonl",
    "to_dataset",
    "write_jsonl",
]
