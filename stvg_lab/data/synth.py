"""The synthetic STVG benchmark: small real mp4 videos of coloured shapes, one described target.

The project's embedded default dataset: it needs no download, generates in seconds on a
laptop CPU and is learnable by a tiny vision-language model, while keeping the structure of
STVG (a sentence names one object among similar ones; the answer is a time span plus a box
per frame) and the paper's three failure modes (§B) as tagged knobs:

* ``small``: the target is 16-20 px instead of 30-40 px ("missing small objects");
* ``short``: the event lasts at most ``short_max_seconds`` (1 s = two frames at 2 fps,
  "extremely short events");
* ``occluded``: an object of the target's colour and shape passes in front of it during the
  event ("occlusion-induced confusion"); the ground-truth box stays the full (amodal) box.

Each video holds a target and 0-2 distractors (0-3 in the ``hard`` preset) on a dark background
under a positional lighting ramp (``SynthConfig.lighting``; flat in ``hard``). Every object has
four attributes a sentence names: size (small/large), colour, shape and motion (moves
left/right/up/down, stays still). The query always names all four, e.g. "the small red
circle that moves left"; distractors share some of them with the target but never all, so
the query is unique within the video only when read whole. The target's event is one of:

* ``appear``: the target is visible only during the event (pops in and out) and moves, or
  stays still, throughout it;
* ``move``: the target is visible the whole clip, still except during the event, when it
  moves ("... that moves left" then picks the moving phase);
* ``cross``: the target enters the frame at one edge and leaves by the opposite one
  ("... that crosses the frame from right to left"); the tube is the frames where at least
  half of it is inside, its boxes clipped to the frame.

Layout written by :func:`generate_synthetic` (HC-STVG v2's raw format, so the real loader
path runs on it)::

    <root>/dataset.json                    manifest: config, seed, clip_seconds, fps, counts, version
    <root>/annotations/{split}_v2.json     HC-STVG v2 records keyed by "<name>.mp4"
    <root>/annotations/{split}_meta.json   difficulty tags and attributes, same keys
    <root>/videos/<name>.mp4               h264 yuv420p (mpeg4 when libx264 is missing)

Every video is drawn from its own random stream ``default_rng([seed, split, index])`` and encoded
by settings whose output does not depend on the process's history (``X264_OPTIONS``), so the same
seed and config give the same files, videos byte for byte, whatever the worker count.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stvg_lab.data.sample import Sample
from stvg_lab.data.synth_config import (  # re-exported: the public face of the benchmark is this module
    ATTRIBUTES,
    DATASET_NAME,
    EVENT_KINDS,
    GENERATOR_VERSION,
    MOTIONS,
    PALETTE,
    PRESETS,
    SHAPES,
    SIZES,
    SPLITS,
    SynthConfig,
    Vocabulary,
    open_vocabulary_config,
)
from stvg_lab.data.synth_scene import _clipped, _Object, apply_lighting, make_scene, query_text, render_frames, shape_mask
from stvg_lab.folders import written_whole

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTES", "DATASET_NAME", "EVENT_KINDS", "GENERATOR_VERSION", "MOTIONS", "PALETTE", "PRESETS", "SHAPES",
    "SIZES", "SPLITS", "SynthConfig", "Vocabulary", "open_vocabulary_config", "make_scene", "query_text", "render_frames", "apply_lighting", "shape_mask",
    "pick_codec", "write_video", "video_name", "generate_synthetic", "read_manifest", "ensure_synthetic", "scene_objects",
    "load_synthetic",
]


def pick_codec(preferred: str = "libx264") -> str:
    """``preferred`` when PyAV can encode it, else ``mpeg4`` (both decode in decord)."""
    import av

    for name in (preferred, "libx264", "mpeg4"):
        if name in av.codecs_available:
            if name != preferred:
                logger.warning("codec %s is not available in PyAV; writing %s", preferred, name)
            return name
    raise RuntimeError("PyAV can encode neither libx264 nor mpeg4; install a PyAV wheel with FFmpeg codecs")


# x264's macroblock-tree rate control (mbtree, on at "veryfast") reads uninitialised stack memory:
# valgrind on a script that calls write_video reports errors inside libx264 with mbtree on and none
# with it off (bisection in bench/LEARNING.md round 10). With it on, a clip's bytes depended on what
# the process had encoded before: 809 of the default's 3,150 videos had other pixels (up to 28 grey
# levels) on each generation, so no two fresh clones trained the same GRPO run. Without it two
# generations are byte-identical (tests/test_synth.py); at the same crf the files are ~1.7x larger.
X264_OPTIONS = {"preset": "veryfast", "x264-params": "mbtree=0"}
MPEG4_BIT_RATE = 2_000_000  # the fallback codec when the PyAV build lacks libx264


def encoder_options(codec: str, crf: int) -> dict[str, Any]:
    """The settings :func:`write_video` encodes ``codec`` with, as the manifest records them."""
    return {"crf": crf, **X264_OPTIONS} if codec == "libx264" else {"bit_rate": MPEG4_BIT_RATE}


def write_video(path: str | Path, frames: np.ndarray, fps: float, codec: str = "libx264", crf: int = 18) -> Path:
    """Encode ``(N, H, W, 3)`` uint8 RGB frames as an mp4 (yuv420p; H and W even)."""
    import av

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        options = encoder_options(codec, crf)
        if codec == "libx264":
            stream.options = {k: str(v) for k, v in options.items()}
        else:
            stream.bit_rate = options["bit_rate"]
        # one thread: deterministic output, and the generator's 2 processes already fill 2 cores
        stream.codec_context.thread_count = 1
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _hcstvg_record(cfg: SynthConfig, target: _Object, tube: tuple[int, int], query: str) -> dict[str, Any]:
    """One HC-STVG v2 raw record (formats README §1): 1-based inclusive frames, xywh boxes."""
    t0, t1 = tube
    boxes = _clipped(target.boxes(), cfg.width, cfg.height)[t0 : t1 + 1]
    return {
        "st_frame": t0 + 1,
        "ed_frame": t1 + 1,
        "st_time": round(t0 / cfg.fps, 4),
        "ed_time": round((t1 + 1) / cfg.fps, 4),
        "img_num": cfg.num_frames,
        "img_size": [cfg.height, cfg.width],
        "bbox": [[int(b[0]), int(b[1]), int(b[2] - b[0]), int(b[3] - b[1])] for b in boxes],
        "English": query,
    }


def _split_seed(seed: int, split: str, index: int) -> list[int]:
    return [int(seed), SPLITS.index(split), int(index)]


def video_name(split: str, index: int) -> str:
    """File name of a generated video (the annotation key)."""
    return f"synth_{split}_{index:05d}.mp4"


def _make_one(job: tuple[dict, str, int, int, str, str]) -> tuple[str, dict, dict]:
    """Render and encode one video into ``video_dir``; returns (key, record, meta). Pool worker."""
    cfg_dict, split, index, seed, video_dir, codec = job
    cfg = SynthConfig.from_dict(cfg_dict)
    scene = make_scene(cfg, split, np.random.default_rng(_split_seed(seed, split, index)))
    name = video_name(split, index)
    write_video(Path(video_dir) / name, render_frames(cfg, scene["objects"]), cfg.fps, codec, cfg.crf)
    return name, _hcstvg_record(cfg, scene["target"], scene["tube"], scene["query"]), scene["meta"]


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")


def generate_synthetic(
    out_dir: str | Path,
    n_train: int = 3000,
    n_val: int = 50,
    n_test: int = 100,
    seed: int = 0,
    config: SynthConfig | None = None,
    progress: bool = True,
    *,
    workers: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the synthetic benchmark to ``out_dir`` (layout in the module docstring); returns it.

    Atomic: everything is built in a hidden folder beside ``out_dir`` and renamed into place
    at the end; on any error the folder is removed and ``out_dir`` is untouched.
    ``workers`` processes render (default ``min(2, cpu_count)``; 1 renders in-process);
    an existing ``out_dir`` raises ``FileExistsError`` unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    cfg = config or SynthConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; remove it or pass overwrite=True")
    counts = {"train": int(n_train), "val": int(n_val), "test": int(n_test)}
    if any(c < 0 for c in counts.values()):
        raise ValueError(f"split sizes must be >= 0, got {counts}")
    codec = pick_codec(cfg.codec)
    n_workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    with written_whole(out_dir, replace=overwrite) as tmp:  # an existing out_dir is swapped out only once this is complete
        (tmp / "videos").mkdir()
        (tmp / "annotations").mkdir()
        cfg_dict = cfg.to_dict()
        jobs = [(cfg_dict, split, i, seed, str(tmp / "videos"), codec) for split in SPLITS for i in range(counts[split])]
        bar = tqdm(total=len(jobs), desc="synthetic videos", unit="video", disable=not progress)
        if n_workers > 1 and len(jobs) >= 16:
            # spawn, not fork: the caller may hold threads (torch, tqdm) that fork would copy mid-lock
            with ProcessPoolExecutor(max_workers=n_workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                results = []
                for r in pool.map(_make_one, jobs, chunksize=8):
                    results.append(r)
                    bar.update()
        else:
            results = []
            for job in jobs:
                results.append(_make_one(job))
                bar.update()
        bar.close()
        pos = 0
        for split in SPLITS:
            chunk = results[pos : pos + counts[split]]
            pos += counts[split]
            _write_json(tmp / "annotations" / f"{split}_v2.json", {k: rec for k, rec, _ in chunk})
            _write_json(tmp / "annotations" / f"{split}_meta.json", {k: meta for k, _, meta in chunk})
        manifest = {
            "name": DATASET_NAME,
            "generator": "stvg_lab.data.synth",
            "generator_version": GENERATOR_VERSION,
            "seed": int(seed),
            "clip_seconds": cfg.clip_seconds,
            "fps": cfg.fps,
            "num_frames": cfg.num_frames,
            "width": cfg.width,
            "height": cfg.height,
            "codec": codec,
            "encoder_options": encoder_options(codec, cfg.crf),
            "counts": counts,
            "annotation_format": "hcstvg-v2",
            "config": cfg_dict,
        }
        _write_json(tmp / "dataset.json", manifest)
    logger.info("wrote %d synthetic videos to %s", len(jobs), out_dir)
    return out_dir


def scene_objects(root: str | Path, key: str) -> list[dict[str, Any]]:
    """Every object of the generated clip ``key`` (``synth_<split>_<index>.mp4``), drawn again from ``root``'s manifest.

    The annotations keep the target's boxes only; an analysis of which object an answer boxed
    (``stvg_lab.analysis.which_object``) needs the distractors' too. The clip's random stream is
    its own (``[seed, split, index]``), so drawing the scene again gives the objects that were
    rendered, without decoding. Returns, in drawing order, ``{"role": "target" | "distractor" |
    "occluder", "attributes": {...}, "boxes": (N, 4) x1y1x2y2 source pixels clipped to the frame,
    "visible": (N,) bool}`` for the clip's N source frames. ValueError names a key that is not a
    generated clip's.
    """
    name = Path(key).name
    parts = name.removesuffix(".mp4").split("_")
    if len(parts) != 3 or parts[0] != "synth" or parts[1] not in SPLITS or not parts[2].isdigit() or not name.endswith(".mp4"):
        raise ValueError(f"{key!r} is not a synthetic clip's name (synth_<split>_<index>.mp4)")
    manifest = read_manifest(root)
    cfg = SynthConfig.from_dict(manifest["config"])
    scene = make_scene(cfg, parts[1], np.random.default_rng(_split_seed(manifest["seed"], parts[1], int(parts[2]))))
    at = next(i for i, o in enumerate(scene["objects"]) if o is scene["target"])
    return [
        {"role": "target" if i == at else "distractor" if i < at else "occluder", "attributes": dict(o.attributes),
         "boxes": _clipped(o.boxes(), cfg.width, cfg.height), "visible": np.asarray(o.visible, dtype=bool)}
        for i, o in enumerate(scene["objects"])
    ]


def read_manifest(root: str | Path) -> dict[str, Any]:
    """``<root>/dataset.json``, with a message saying how to make it when it is missing."""
    path = Path(root) / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; generate the dataset with `stvg-lab data synth --out {root}`")
    return json.loads(path.read_text())


def ensure_synthetic(
    root: str | Path, n_train: int = 3000, n_val: int = 50, n_test: int = 100, seed: int = 0, *, progress: bool = False
) -> Path:
    """The synthetic dataset at ``root``, generated (these counts, ``seed``) when it is missing.

    An existing dataset (``dataset.json`` present) is used as it is. A folder that exists and
    is not empty but has no ``dataset.json`` is not overwritten: ValueError says what to do.
    Two processes asking at once are fine: generation is atomic, and the loser of the final
    rename finds the winner's identical, seeded dataset.
    """
    root = Path(root)
    if (root / "dataset.json").is_file():
        made = read_manifest(root)
        if made.get("codec") == "libx264" and made.get("encoder_options", {}).get("x264-params") != X264_OPTIONS["x264-params"]:
            logger.warning("%s was encoded by an older generator whose x264 settings gave different pixels on every "
                           "generation (see synth.X264_OPTIONS); its numbers will not match the README's. Regenerate it: "
                           "`stvg-lab data synth --out %s --overwrite`", root / "dataset.json", root)
        return root
    if root.exists() and any(root.iterdir()):
        raise ValueError(
            f"{root} exists but holds no dataset.json, so it is not a synthetic dataset; give the folder of one "
            "(`stvg-lab data synth --out <dir>`), or remove the folder to have it generated there"
        )
    if root.exists():
        root.rmdir()
    logger.info("generating the synthetic dataset (train %d, val %d, test %d) in %s", n_train, n_val, n_test, root)
    try:
        generate_synthetic(root, n_train, n_val, n_test, seed=seed, progress=progress,
                           workers=1 if n_train + n_val + n_test < 64 else None)
    except OSError:
        if not (root / "dataset.json").is_file():
            raise
    return root


def load_synthetic(root: str | Path, split: str) -> list[Sample]:
    """Samples of one split, read through the HC-STVG v2 loader, with the meta tags in ``extras``.

    ``extras`` gains ``small``, ``short``, ``occluded``, ``occlusion``, ``attributes``,
    ``event``, ``n_distractors``, ``distractors``, ``template`` and ``tube_seconds``;
    ``dataset`` is ``"synthetic"``.
    """
    from stvg_lab.data.hcstvg import load_hcstvg

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    manifest = read_manifest(root)
    ann = root / "annotations" / f"{split}_v2.json"
    meta_path = root / "annotations" / f"{split}_meta.json"
    samples = load_hcstvg(ann, video_dir=root / "videos", version=2, clip_seconds=float(manifest["clip_seconds"]))
    meta = json.loads(meta_path.read_text())
    for s in samples:
        key = s.extras.get("key") or (Path(s.video).name if s.video else f"{s.id}.mp4")
        if key not in meta:
            raise ValueError(f"{meta_path}: no entry for video {key!r} of {ann}; regenerate the dataset")
        s.dataset = DATASET_NAME
        s.extras.update(meta[key])
    return samples
