"""Where each dataset's files live under a data folder, and loading a split from there.

The layouts are those of ``data/README.md``::

    <root>/dataset.json + annotations/ + videos/            synthetic (stvg-lab data synth)
    <root>/anno_v2/{train_v2,val_v2}.json + videos/          HC-STVG v2
    <root>/anno/{train,test}.json + videos/                  HC-STVG v1
    <root>/annotations/{train,val,test}_annotations.json     VidSTG, with
    <root>/vidor/annotation/{training,validation}/<group>/<vid>.json and videos/<group>/<vid>.mp4

VidSTG's test split takes its boxes from VidOR ``validation``, train and val from ``training``.
The loaders themselves take file paths, so other layouts work from Python.
"""

from __future__ import annotations

from pathlib import Path

from stvg_lab.data.sample import Sample

SPLITS: dict[str, tuple[str, ...]] = {
    "synthetic": ("train", "val", "test"),
    "hcstvg-v1": ("train", "test"),
    "hcstvg-v2": ("train", "val"),  # the v2 test split (query_v2.json) has no ground truth
    "vidstg": ("train", "val", "test"),
}
VIDSTG_VIDOR_SPLIT = {"train": "training", "val": "training", "test": "validation"}


def detect_dataset(root: str | Path) -> str:
    """Which dataset a folder holds, from the files it has (see the module docstring)."""
    root = Path(root)
    if (root / "dataset.json").is_file():
        return "synthetic"
    if (root / "anno_v2").is_dir():
        return "hcstvg-v2"
    if (root / "anno").is_dir():
        return "hcstvg-v1"
    if (root / "annotations").is_dir() and (root / "vidor").is_dir():
        return "vidstg"
    raise FileNotFoundError(
        f"{root} holds none of the known layouts (dataset.json, anno_v2/, anno/, annotations/ + vidor/); "
        "see data/README.md, or generate the synthetic set with `stvg-lab data synth --out <folder>`"
    )


def _need(path: Path, dataset: str) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the {dataset} layout under a data folder is in data/README.md")
    return path


def load_split(root: str | Path, split: str, dataset: str | None = None) -> list[Sample]:
    """The samples of ``split`` of the dataset under ``root`` (``dataset`` detected when None)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"data folder {root} not found; see data/README.md (synthetic: `stvg-lab data synth --out {root}`)"
        )
    dataset = dataset or detect_dataset(root)
    if dataset not in SPLITS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(SPLITS)}")
    if split not in SPLITS[dataset]:
        hint = " (HC-STVG v2's test split has no ground truth: evaluate on val, as the paper does)" if dataset == "hcstvg-v2" else ""
        raise ValueError(f"dataset {dataset!r} has splits {list(SPLITS[dataset])}, not {split!r}{hint}")
    if dataset == "synthetic":
        from stvg_lab.data.synth import load_synthetic

        if not (root / "dataset.json").is_file():
            raise FileNotFoundError(
                f"no synthetic dataset at {root} (no dataset.json); generate it with "
                f"`stvg-lab data synth --out {root}`"
            )
        samples = list(load_synthetic(root, split))
    elif dataset in ("hcstvg-v1", "hcstvg-v2"):
        from stvg_lab.data.hcstvg import load_hcstvg

        version = 1 if dataset == "hcstvg-v1" else 2
        ann = root / "anno_v2" / f"{split}_v2.json" if version == 2 else root / "anno" / f"{split}.json"
        samples = list(load_hcstvg(_need(ann, dataset), video_dir=_need(root / "videos", dataset), version=version))
    else:
        from stvg_lab.data.vidstg import load_vidstg

        ann = _need(root / "annotations" / f"{split}_annotations.json", dataset)
        vidor = _need(root / "vidor" / "annotation" / VIDSTG_VIDOR_SPLIT[split], dataset)
        samples = list(load_vidstg(ann, vidor, video_dir=_need(root / "videos", dataset)))
    if not samples:
        raise ValueError(f"{dataset} split {split!r} under {root} has no samples")
    return samples
