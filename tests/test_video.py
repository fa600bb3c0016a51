"""stvg_lab.video: frame size, sampling, decoding, the frame-count policy and the two mappings."""

from __future__ import annotations

import json
import logging
import math
from fractions import Fraction

import av
import numpy as np
import pytest

from stvg_lab.answer import format_answer, parse_answer
from stvg_lab.data.sample import Sample
from stvg_lab.video import (
    Clip,
    VideoError,
    answer_to_tube,
    decode_frames,
    frame_count_tolerance,
    load_clip,
    model_frame_size,
    probe_video,
    reward_columns,
    sample_frame_indices,
    tube_to_model,
)

RED = (230, 40, 40)


@pytest.mark.parametrize(
    "width, height, expected",
    [
        (640, 360, (336, 196)),  # landscape 16:9: 336 x 189 rounds to 196 (7 x 28)
        (1280, 720, (336, 196)),  # same aspect, larger: same model frame
        (480, 640, (252, 336)),  # portrait (VidSTG fixture 3): the height takes the 336
        (854, 480, (336, 196)),  # HC-STVG fixture 3, not exactly 16:9: 188.8 -> 196
        (336, 336, (336, 336)),  # exactly at the limit: unchanged
        (224, 224, (224, 224)),  # the synthetic default: already on the grid, never upscaled
        (100, 50, (112, 56)),  # small frame: no scaling; 100/28 = 3.57 -> 4, 50/28 = 1.79 -> 2
        (10, 10, (28, 28)),  # tinier than one patch: at least one patch per side
        (337, 100, (336, 112)),  # just over the limit: 99.7 -> 112 (4 x 28)
        (1001, 333, (336, 112)),  # odd sizes: 336 x 111.8 -> 112
        (2000, 20, (336, 28)),  # extreme aspect: the short side never below 28
    ],
)
def test_model_frame_size(width, height, expected):
    assert model_frame_size(width, height) == expected


def test_model_frame_size_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        model_frame_size(0, 10)  # an empty frame
    with pytest.raises(ValueError, match="smaller than the patch"):
        model_frame_size(100, 100, max_side=20)  # no multiple of 28 fits


@pytest.mark.parametrize(
    "num_frames, fps, head, count, last",
    [
        (600, 30.0, [0, 15, 30, 45], 40, 585),  # HC-STVG 20 s at 30 fps: every 15th frame
        (500, 25.0, [0, 13, 25, 38, 50], 40, 488),  # step 12.5: halves round up (13, 38, ...)
        (90, 29.97, [0, 15, 30, 45, 60, 75], 6, 75),  # NTSC: 89.91 rounds to 90 = past the end
        (480, 24.0, [0, 12, 24], 40, 468),  # HC-STVG fixture 3
        (56, 8.0, [0, 4, 8], 14, 52),  # the synthetic default: 7 s -> 14 frames
        (1, 30.0, [0], 1, 0),  # a one-frame video still gives one frame
        (15, 30.0, [0], 1, 0),  # frame 15 does not exist
        (16, 30.0, [0, 15], 2, 15),  # ... and now it does
        (5, 2.0, [0, 1, 2, 3, 4], 5, 4),  # already at 2 fps: every frame
    ],
)
def test_sample_frame_indices(num_frames, fps, head, count, last):
    idx = sample_frame_indices(num_frames, fps)
    assert idx.dtype == np.int64
    assert idx[: len(head)].tolist() == head
    assert len(idx) == count and idx[-1] == last
    assert (np.diff(idx) > 0).all()


def test_sample_frame_indices_ntsc_drift():
    # 29.97 fps: 15k until k = 33; k = 34 is 509.49 -> 509, one frame before 15 x 34
    idx = sample_frame_indices(600, 29.97)
    assert idx[33] == 495 and idx[34] == 509


@pytest.mark.parametrize(
    "args, match",
    [
        ((10, 1.0), "without repeating"),  # slower than 2 fps: refuse rather than duplicate frames
        ((0, 30.0), "num_frames"),  # empty video
        ((10, 0.0), "fps"),  # nonsense fps
        ((10, float("nan")), "fps"),  # NaN fps (e.g. a bad header)
    ],
)
def test_sample_frame_indices_errors(args, match):
    with pytest.raises(ValueError, match=match):
        sample_frame_indices(*args)


def _square_x(i: int) -> int:
    """Left edge of the red square in frame i of the test video."""
    return 8 + 4 * (i % 40)


def write_test_video(path, n=40, fps=30.0, w=224, h=160) -> None:
    """A red 16 px square at x = _square_x(i), y = 40, on a dark background; libx264 with B-frames."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for i in range(n):
            img = np.full((h, w, 3), 16, np.uint8)
            img[40:56, _square_x(i) : _square_x(i) + 16] = RED
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "square.mp4"
    write_test_video(path)
    return path


def _red_left_edge(frame: np.ndarray, row: int) -> int:
    red = (frame[row, :, 0] > 150) & (frame[row, :, 1] < 100)
    return int(np.flatnonzero(red)[0])


def test_decode_frames_content_and_seek(video):
    frames_wanted = [0, 15, 30, 7, 39]  # out of order on purpose: get_batch must seek both ways
    frames = decode_frames(video, frames_wanted, (224, 160))
    assert frames.shape == (5, 160, 224, 3) and frames.dtype == np.uint8
    for img, i in zip(frames, frames_wanted):
        assert abs(_red_left_edge(img, 48) - _square_x(i)) <= 1  # the right frame, not a neighbour
        assert np.abs(img[48, _square_x(i) + 8].astype(int) - RED).max() < 30  # colour survives yuv420p
        assert img[100, 100].max() < 40  # background stays dark


def test_decode_frames_resizes_in_decoder(video):
    frames = decode_frames(video, [10], (112, 80))  # half size
    assert frames.shape == (1, 80, 112, 3)
    assert abs(_red_left_edge(frames[0], 24) - _square_x(10) / 2) <= 1.5


def test_probe_video(video):
    info = probe_video(video)
    assert (info.num_frames, info.width, info.height) == (40, 224, 160)
    assert info.fps == pytest.approx(30.0, abs=0.01)


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        decode_frames(missing, [0], (224, 160))


def test_corrupt_file_names_path(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoError, match="junk.mp4"):
        decode_frames(junk, [0], (224, 160))


@pytest.mark.parametrize(
    "num_frames, tolerance",
    [
        (40, 2),  # the minimum
        (600, 12),  # HC-STVG: 2 % = 0.4 s, under one 2 fps step
        (149, 2),  # floor(2.98) = 2
    ],
)
def test_frame_count_tolerance(num_frames, tolerance):
    assert frame_count_tolerance(num_frames) == tolerance


def test_index_past_end_within_tolerance_reads_last_frame(video, caplog):
    # the file decodes 40 frames (0..39); 40 and 41 are within the tolerance of 2
    with caplog.at_level(logging.WARNING, logger="stvg_lab.video"):
        frames = decode_frames(video, [38, 40, 41], (224, 160))
    assert frames.shape[0] == 3  # nothing dropped
    last = decode_frames(video, [39], (224, 160))[0]
    assert np.array_equal(frames[1], last) and np.array_equal(frames[2], last)
    assert "2 sampled index(es) past the last decodable frame 39" in caplog.text


def test_index_far_past_end_raises(video):
    with pytest.raises(VideoError, match=r"square.mp4: frame 45 .* only 40 frames decode"):
        decode_frames(video, [0, 45], (224, 160))
    with pytest.raises(VideoError, match="only 40 frames"):
        decode_frames(video, [41], (224, 160), max_missing=0)  # a caller may demand exact counts


def _sample(video, num_frames=40, fps=30.0, width=224, height=160, tube=None, sid="s1") -> Sample:
    tube = tube or {f: [float(_square_x(f)), 40.0, float(_square_x(f) + 16), 56.0] for f in range(10, 30)}
    return Sample(sid, str(video) if video else None, "the red square", fps, num_frames, width, height, tube)


def test_load_clip(video):
    clip = load_clip(_sample(video))
    assert isinstance(clip, Clip)
    assert clip.frame_numbers.tolist() == [0, 15, 30]
    assert clip.frames.shape == (3, 168, 224, 3)  # 224x160 is not on the grid: 160/28 = 5.7 -> 168
    assert clip.timestamps.tolist() == pytest.approx([0.0, 0.5, 1.0])
    assert (clip.size, clip.fps, clip.video_fps, clip.sample_id) == ((224, 168), 2.0, 30.0, "s1")
    spec = clip.prompt_spec()
    assert (spec.num_frames, spec.width, spec.height, spec.fps) == (3, 224, 168, 2.0)


@pytest.mark.parametrize(
    "annotated, ok",
    [
        (40, True),  # exact
        (42, True),  # 2 more annotated than decodable: tolerated; frame 30 exists anyway
        (38, True),  # fewer annotated: tolerated
        (50, False),  # 10 more: the annotation does not describe this file
        (30, False),  # 10 fewer
    ],
)
def test_load_clip_frame_count_policy(video, annotated, ok):
    s = _sample(video, num_frames=annotated)
    if ok:
        clip = load_clip(s)
        assert len(clip.frames) == len(sample_frame_indices(annotated, 30.0))
    else:
        with pytest.raises(VideoError, match=rf"annotates {annotated} frames but 40 decode"):
            load_clip(s)


def test_load_clip_without_video_path():
    with pytest.raises(ValueError, match="'s1' has no video path"):
        load_clip(_sample(None))


@pytest.mark.parametrize(
    "tube_frames, span",
    [
        ((10, 29), (1, 1)),  # kept 0, 15, 30: only 15 inside
        ((0, 30), (0, 2)),  # the tube covers every kept frame
        ((16, 20), (1, 1)),  # no kept frame inside; centre 18 is nearest to 15
        ((23, 28), (2, 2)),  # no kept frame inside; centre 25.5 is nearest to 30
        ((20, 25), (1, 1)),  # centre 22.5 is equidistant from 15 and 30: the earlier wins
        ((31, 39), (2, 2)),  # after the last kept frame: the last one
    ],
)
def test_tube_to_model_span(tube_frames, span):
    tube = {f: [10.0, 20.0, 50.0, 60.0] for f in range(tube_frames[0], tube_frames[1] + 1)}
    got, boxes = tube_to_model(_sample(None, tube=tube), [0, 15, 30], (112, 84))
    assert got == span
    assert sorted(boxes) == list(range(span[0], span[1] + 1))
    assert boxes[span[0]] == pytest.approx([5.0, 10.5, 25.0, 31.5])  # x * 112/224, y * 84/160


def test_tube_to_model_interpolates_gaps_and_clips():
    # frames 0 and 30 annotated only (a VidOR-style gap); the box at 15 is the midpoint
    tube = {0: [0.0, 0.0, 20.0, 20.0], 30: [200.0, 140.0, 260.0, 180.0]}
    span, boxes = tube_to_model(_sample(None, tube=tube), [0, 15, 30], (224, 160))
    assert span == (0, 2)
    assert boxes[1] == pytest.approx([100.0, 70.0, 140.0, 100.0])
    assert boxes[2] == pytest.approx([200.0, 140.0, 224.0, 160.0])  # clipped to the frame


FN = [0, 15, 30, 45]


@pytest.mark.parametrize(
    "span, boxes, frames, first_box, last_box",
    [
        # span 1..2: each kept frame stands for the frames centred on it, so the span covers
        # half-way after frame 0 ((0+15+1)//2 = 8) to just before half-way to 45 (37)
        ((1, 2), {1: [0, 0, 10, 10], 2: [30, 0, 40, 10]}, (8, 37), [0, 0, 10, 10], [30, 0, 40, 10]),
        # the last index covers up to the video's last frame (49); held after the last anchor
        ((3, 3), {3: [5, 5, 15, 15]}, (38, 49), [5, 5, 15, 15], [5, 5, 15, 15]),
        # a span past the end is clipped to the last index
        ((2, 9), {2: [0, 0, 10, 10], 3: [10, 0, 20, 10]}, (23, 49), [0, 0, 10, 10], [10, 0, 20, 10]),
        # index 2 missing: interpolated between the anchors at 15 and 45
        ((1, 3), {1: [0, 0, 10, 10], 3: [30, 0, 40, 10]}, (8, 49), [0, 0, 10, 10], [30, 0, 40, 10]),
        # anchors outside the span still steer the interpolation inside it: frame 23 is 8/30 of
        # the way from 15 to 45 (x1 = 8), frame 37 is 22/30 (x1 = 22)
        ((2, 2), {1: [0, 0, 10, 10], 3: [30, 0, 40, 10]}, (23, 37), [8, 0, 18, 10], [22, 0, 32, 10]),
    ],
)
def test_answer_to_tube(span, boxes, frames, first_box, last_box):
    tube = answer_to_tube(span, boxes, FN, 50, (100, 100), (100, 100))
    assert (min(tube), max(tube)) == frames and len(tube) == frames[1] - frames[0] + 1
    assert tube[frames[0]] == pytest.approx(first_box)
    assert tube[frames[1]] == pytest.approx(last_box)


def test_answer_to_tube_midpoint_and_scale():
    tube = answer_to_tube((1, 3), {1: [0, 0, 10, 10], 3: [30, 0, 40, 10]}, FN, 50, (100, 100), (100, 100))
    assert tube[30] == pytest.approx([15, 0, 25, 10])  # missing index 2 interpolated
    scaled = answer_to_tube((0, 0), {0: [168, 98, 336, 196]}, FN, 50, (640, 360), (336, 196))
    assert scaled[0] == pytest.approx([320, 180, 640, 360])  # model 336x196 -> 640x360 per axis


@pytest.mark.parametrize(
    "span, boxes",
    [
        ((4, 6), {4: [0, 0, 1, 1]}),  # the span lies wholly past the last index
        ((0, 1), {7: [0, 0, 1, 1]}),  # the only box names a frame that does not exist
    ],
)
def test_answer_to_tube_empty(span, boxes):
    assert answer_to_tube(span, boxes, FN, 50, (100, 100), (100, 100)) == {}


ROUND_TRIP_CASES = [
    # fps, num_frames, W, H, first, last: each with the edge it covers
    (25.0, 500, 1280, 720, 40, 99),  # step 12.5 (gaps of 12 and 13)
    (29.97, 600, 640, 360, 30, 59),  # NTSC rate, short tube (2 kept frames)
    (30.0, 600, 480, 640, 120, 164),  # portrait
    (24.0, 480, 854, 480, 443, 479),  # tube ends on the video's last frame
    (30.0, 600, 640, 360, 0, 29),  # tube starts on frame 0
    (29.97, 900, 360, 640, 500, 800),  # long NTSC tube past the one-frame drift, portrait
    (8.0, 56, 224, 224, 9, 40),  # the synthetic default (no resize)
]


@pytest.mark.parametrize("fmt", ["paper", "compact"])
@pytest.mark.parametrize("fps, num_frames, W, H, first, last", ROUND_TRIP_CASES)
def test_round_trip(fmt, fps, num_frames, W, H, first, last):
    # a box moving linearly, so interpolation between kept frames is exact up to rounding
    def gt_box(f):
        return [0.1 * W + 0.3 * (f - first), 0.2 * H + 0.1 * (f - first), 0.5 * W + 0.3 * (f - first), 0.7 * H]

    s = Sample("rt", None, "q", fps, num_frames, W, H, {f: gt_box(f) for f in range(first, last + 1)})
    fn = sample_frame_indices(num_frames, fps)
    size = model_frame_size(W, H)
    span, boxes = tube_to_model(s, fn, size)
    parsed = parse_answer(format_answer(span, boxes, fmt=fmt), fmt)
    assert parsed.ok and parsed.consistent and parsed.span == span
    tube = answer_to_tube(parsed.span, parsed.pred, fn, num_frames, (W, H), size)
    step = fps / 2.0
    start, end = min(tube), max(tube)
    # centred coverage: each end lands within half a sampling step (+1 frame of rounding where
    # the steps alternate, e.g. 12/13 at 25 fps), early or late: well inside the one-step bound
    assert abs(start - first) <= step / 2 + 1
    assert abs(end - last) <= step / 2 + 1
    assert len(tube) == end - start + 1
    tol = np.array([W / size[0], H / size[1]] * 2)  # one model pixel, in original pixels
    for f in range(int(fn[span[0]]), int(fn[span[1]]) + 1):
        assert (np.abs(np.array(tube[f]) - gt_box(f)) <= tol + 1e-9).all(), f


def test_reward_columns_are_json_and_match_tube_to_model():
    s = _sample(None, tube={f: [20.0, 40.0, 60.0, 100.0] for f in range(0, 40)})
    cols = reward_columns(s, [0, 15, 30], (112, 84))
    assert cols == json.loads(json.dumps(cols))
    assert cols["gt_span"] == [0, 2]
    assert cols["frame_size"] == [112, 84]
    assert [r[0] for r in cols["gt_tube"]] == [0, 1, 2]
    assert cols["gt_tube"][0][1:] == pytest.approx([10.0, 21.0, 30.0, 52.5])
    assert math.isclose(cols["gt_tube"][2][4], 52.5)
