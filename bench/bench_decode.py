# .venv/bin/python bench/bench_decode.py            (add --quick for a smoke run, --no-generation to skip the dataset timing)
"""Sampled decoding (seek to the 2 fps kept frames) against decoding every frame, and the
generation time of the default synthetic dataset.

Two kinds of video are timed, both written by ``stvg_lab.data.synth`` into a temp folder:

* ``synthetic``: the default benchmark clips (224x224, 8 fps, 7 s = 56 frames; 14 kept);
* ``hcstvg-like``: the same generator at HC-STVG's shape (640x360, 30 fps, 20 s = 600
  frames; 40 kept, resized to 336x196 in the decoder).

"sampled" is ``decode_frames(path, sample_frame_indices(...), size)``; "all" decodes every
frame at the same size (what a loader that reads the whole video and then picks does).
Results are printed and written to ``bench/out/bench_decode.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from stvg_lab.data.synth import SynthConfig, generate_synthetic
from stvg_lab.video import decode_frames, model_frame_size, probe_video, sample_frame_indices


def time_decoding(paths: list[Path], size: tuple[int, int], kept, every, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` mean seconds per video for the kept frames and for every frame."""
    best = {"sampled": float("inf"), "all": float("inf")}
    for _ in range(repeats):
        for name, frames in (("sampled", kept), ("all", every)):
            t = time.perf_counter()
            for p in paths:
                decode_frames(p, frames, size)
            best[name] = min(best[name], (time.perf_counter() - t) / len(paths))
    return best["sampled"], best["all"]


def bench_kind(label: str, cfg: SynthConfig, n_videos: int, repeats: int, tmp: Path) -> dict:
    root = generate_synthetic(tmp / label, n_videos, 0, 0, seed=0, config=cfg, progress=False)
    paths = sorted((root / "videos").glob("*.mp4"))
    info = probe_video(paths[0])
    kept = sample_frame_indices(cfg.num_frames, cfg.fps)
    every = list(range(info.num_frames))
    size = model_frame_size(cfg.width, cfg.height)
    sampled, full = time_decoding(paths, size, kept, every, repeats)
    row = {
        "kind": label,
        "videos": len(paths),
        "video": f"{cfg.width}x{cfg.height} {cfg.fps:g} fps {info.num_frames} frames",
        "model_size": list(size),
        "kept_frames": len(kept),
        "sampled_s_per_video": round(sampled, 5),
        "all_s_per_video": round(full, 5),
        "speedup": round(full / sampled, 2),
    }
    print(
        f"{label:12s} {row['video']:32s} -> {size[0]}x{size[1]}, {len(kept):3d} kept: "
        f"sampled {sampled * 1e3:7.1f} ms/video   all {full * 1e3:7.1f} ms/video   speed-up {full / sampled:4.1f}x"
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=int, default=8, help="synthetic videos to time")
    ap.add_argument("--hcstvg-videos", type=int, default=3, help="HC-STVG-shaped videos to time")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2 videos each, 1 repeat, no dataset timing")
    ap.add_argument("--no-generation", action="store_true", help="skip timing the default dataset's generation")
    ap.add_argument("--out", default="bench/out/bench_decode.json")
    args = ap.parse_args()
    if args.quick:
        args.videos, args.hcstvg_videos, args.repeats, args.no_generation = 2, 1, 1, True

    results: dict = {"cpu_count": os.cpu_count(), "decoding": []}
    hcstvg_like = replace(
        SynthConfig(), width=640, height=360, fps=30.0, clip_seconds=20.0, event_seconds=(3.0, 10.0), speed_px_per_s=(30.0, 60.0)
    )
    with tempfile.TemporaryDirectory(prefix="bench_decode_") as tmp:
        tmp = Path(tmp)
        results["decoding"].append(bench_kind("synthetic", SynthConfig(), args.videos, args.repeats, tmp))
        results["decoding"].append(bench_kind("hcstvg-like", hcstvg_like, args.hcstvg_videos, args.repeats, tmp))
        if not args.no_generation:
            t = time.perf_counter()
            generate_synthetic(tmp / "default", 300, 50, 100, seed=0, progress=False)
            secs = time.perf_counter() - t
            results["generation"] = {"n_train": 300, "n_val": 50, "n_test": 100, "seconds": round(secs, 2)}
            print(f"default dataset (300/50/100 clips, {min(2, os.cpu_count() or 1)} workers): generated in {secs:.1f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
