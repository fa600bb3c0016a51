"""Real-format loaders: HC-STVG v1/v2 and VidSTG against the formats README's tables, bad rows, round trips.

Every literal below comes from ``tests/fixtures/formats/README.md`` (the expected parse of
each fixture entry) or is computed by hand from the fixture files.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stvg_lab.data.conventions import fit_box, hcstvg_box_frames, vidstg_gt_frames
from stvg_lab.data.errors import AnnotationError, LoadedSamples, SkippedRow
from stvg_lab.data.hcstvg import load_hcstvg
from stvg_lab.data.sample import from_dataset, read_jsonl, to_dataset, write_jsonl
from stvg_lab.data.vidstg import load_vidstg

FORMATS = Path(__file__).parent / "fixtures" / "formats"
HC = FORMATS / "hcstvg_v2_raw.json"
VS = FORMATS / "vidstg_raw_annotations.json"
VIDOR = FORMATS / "vidor"
K1, K2, K3 = "12_fixtureAAAA01.mp4", "7_fixtureBBBB02.mkv", "3_fixtureCCCC03.mp4"


def _write(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _hc_raw() -> dict:
    return json.loads(HC.read_text())


@pytest.fixture
def vidstg_tree(tmp_path: Path) -> Path:
    """A writable copy of the VidSTG fixtures: ``ann.json`` and ``vidor/validation/0000/*.json``."""
    shutil.copytree(VIDOR, tmp_path / "vidor")
    shutil.copy(VS, tmp_path / "ann.json")
    return tmp_path


def _edit_json(path: Path, edit: Callable[[Any], Any]) -> None:
    """Apply the in-place ``edit`` (its return value is ignored) to the JSON file at ``path``."""
    data = json.loads(path.read_text())
    edit(data)
    _write(path, data)


def _by_id(samples) -> dict:
    return {s.id: s for s in samples}


# --------------------------------------------------------------------------- HC-STVG fixture table

# (key, convention, span (0-based incl.), #boxes, first (frame, xyxy), last (frame, xyxy), dropped)
HC_TABLE = [
    # official 1-based inclusive -> st-1..ed-1
    (K1, "official", (120, 164), 45, (120, [200, 60, 290, 310]), (164, [221, 62, 311, 312]), []),
    (K2, "official", (0, 29), 30, (0, [600, 100, 780, 660]), (29, [611, 91, 791, 651]), []),  # st_frame=1 -> frame 0
    (K3, "official", (443, 479), 37, (443, [400, 120, 520, 420]), (479, [415, 117, 535, 417]), []),  # ends on last frame
    # stcat [st-1, st-1+len-1]: the same frames as official when len(bbox) agrees with ed_frame
    (K1, "stcat", (120, 164), 45, (120, [200, 60, 290, 310]), (164, [221, 62, 311, 312]), []),
    (K2, "stcat", (0, 29), 30, (0, [600, 100, 780, 660]), (29, [611, 91, 791, 651]), []),
    (K3, "stcat", (443, 479), 37, (443, [400, 120, 520, 420]), (479, [415, 117, 535, 417]), []),
    # tubedetr [st, st+len): one frame later
    (K1, "tubedetr", (121, 165), 45, (121, [200, 60, 290, 310]), (165, [221, 62, 311, 312]), []),
    (K2, "tubedetr", (1, 30), 30, (1, [600, 100, 780, 660]), (30, [611, 91, 791, 651]), []),
    # entry 3 would end on frame 480 = img_num, which does not exist: its last box is dropped and
    # frame 479 keeps bbox[-2] = [415,116,120,300] -> [415,116,535,416]
    (K3, "tubedetr", (444, 479), 36, (444, [400, 120, 520, 420]), (479, [415, 116, 535, 416]), [480]),
]

# key -> (id, fps, width, height, img_num, st_time, ed_time)
HC_META = {
    K1: ("12_fixtureAAAA01", 30.0, 640, 360, 600, 4.02, 5.51),
    K2: ("7_fixtureBBBB02", 25.0, 1280, 720, 500, 0.0, 1.2),  # .mkv key
    K3: ("3_fixtureCCCC03", 24.0, 854, 480, 480, 18.5, 20.0),  # not 16:9; img_size is [h, w]
}


@pytest.mark.parametrize("key,convention,span,n,first,last,dropped", HC_TABLE)
def test_hcstvg_fixture_table(key, convention, span, n, first, last, dropped):
    s = _by_id(load_hcstvg(HC, convention=convention))[HC_META[key][0]]
    sid, fps, w, h, img_num, st_time, ed_time = HC_META[key]
    assert (s.id, s.fps, s.width, s.height, s.num_frames) == (sid, fps, w, h, img_num)
    assert s.span_frames == span and len(s.tube) == n
    assert sorted(s.tube) == list(range(span[0], span[1] + 1))  # one box per frame, no gap
    assert s.tube[first[0]] == first[1] and s.tube[last[0]] == last[1]
    assert s.dataset == "hcstvg-v2" and s.video is None
    assert s.extras["st_time"] == st_time and s.extras["ed_time"] == ed_time  # the file's seconds
    assert s.extras["convention"] == convention and s.extras["dropped_frames"] == dropped


def test_hcstvg_file_order_query_and_seconds():
    samples = load_hcstvg(HC)
    assert [s.id for s in samples] == ["12_fixtureAAAA01", "7_fixtureBBBB02", "3_fixtureCCCC03"]
    assert samples[0].query == "The man in the grey coat picks up the cup and drinks from it."
    # frame-derived seconds [first/fps, (last+1)/fps) differ slightly from the file's 4.02-5.51
    assert samples[0].span_seconds == (4.0, 5.5)
    assert samples[2].span_seconds == (443 / 24, 20.0)


def test_hcstvg_clip_seconds_sets_fps():
    # the synthetic benchmark's 7 s clips: fps = img_num / clip_seconds
    assert load_hcstvg(HC, clip_seconds=10.0)[0].fps == 60.0


def test_hcstvg_tubedetr_drop_is_logged(caplog):
    with caplog.at_level(logging.INFO, logger="stvg_lab.data.hcstvg"):
        load_hcstvg(HC, convention="tubedetr")
    assert "dropped" in caplog.text and "1 tubes" in caplog.text


def test_hcstvg_v1_layout(tmp_path):
    # v1: caption for English, width/height for img_size, no ed_frame
    v1 = {}
    for key, r in _hc_raw().items():
        h, w = r.pop("img_size")
        r.pop("ed_frame")
        r["caption"] = r.pop("English")
        v1[key] = {**r, "width": w, "height": h}
    path = _write(tmp_path / "train.json", v1)
    got = load_hcstvg(path, version=1)
    ref = load_hcstvg(HC)
    assert [s.dataset for s in got] == ["hcstvg-v1"] * 3
    for a, b in zip(got, ref):
        assert (a.id, a.query, a.width, a.height, a.fps, a.tube) == (b.id, b.query, b.width, b.height, b.fps, b.tube)
        assert a.extras["ed_frame"] is None
    # read as v2, the v1 file is refused with a hint
    with pytest.raises(AnnotationError, match=r"'English'.*pass version=1"):
        load_hcstvg(path, version=2)


# --------------------------------------------------------------------------- HC-STVG video paths


def test_hcstvg_video_dir(tmp_path):
    vids = tmp_path / "videos"
    (vids / "sub").mkdir(parents=True)
    (vids / K1).touch()
    (vids / "sub" / K2).touch()  # v2 keeps videos in sub-folders the key does not name
    (vids / K3).touch()
    samples = load_hcstvg(HC, video_dir=vids)
    assert [s.video for s in samples] == [str(vids / K1), str(vids / "sub" / K2), str(vids / K3)]
    (vids / K3).unlink()
    with pytest.raises(AnnotationError) as e:
        load_hcstvg(HC, video_dir=vids)
    assert HC.name in str(e.value) and repr(K3) in str(e.value) and str(vids / K3) in str(e.value)
    assert e.value.field == "video"


def test_hcstvg_video_dir_must_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_hcstvg(HC, video_dir=tmp_path / "nowhere")


# --------------------------------------------------------------------------- HC-STVG bad rows


def _set(key: str, field: str, value: Any) -> Callable[[dict], None]:
    return lambda d: d[key].__setitem__(field, value)


def _set_box(key: str, i: int, box: list) -> Callable[[dict], None]:
    return lambda d: d[key]["bbox"].__setitem__(i, box)


# (case, key, mutation, field, fragment of the message)
HC_BAD = [
    ("missing English", K1, lambda d: d[K1].pop("English"), "English", "missing"),
    ("missing bbox", K2, lambda d: d[K2].pop("bbox"), "bbox", "missing"),
    ("missing img_size", K3, lambda d: d[K3].pop("img_size"), "img_size", "missing"),
    ("one box short of st..ed", K1, lambda d: d[K1]["bbox"].pop(), "bbox", "44 boxes"),
    ("ed_frame not a number", K1, _set(K1, "ed_frame", "165"), "ed_frame", "1-based"),
    ("tube past img_num", K1, _set(K1, "img_num", 160), "ed_frame", "past the video's img_num=160"),
    ("st_frame 0 (1-based)", K2, lambda d: d[K2].update(st_frame=0, ed_frame=29), "st_frame", ">= 1"),
    ("img_size not [h, w]", K1, _set(K1, "img_size", [360]), "img_size", "[height, width]"),
    ("empty bbox list", K1, _set(K1, "bbox", []), "bbox", "non-empty"),
    ("box of 3 numbers", K1, _set_box(K1, 3, [1, 2, 3]), "bbox[3]", "4 finite numbers"),
    ("box with a string", K1, _set_box(K1, 0, [1, "2", 3, 4]), "bbox[0]", "4 finite numbers"),
    ("zero width", K1, _set_box(K1, 5, [200, 60, 0, 250]), "bbox[5]", "non-positive w or h"),
    ("negative height", K2, _set_box(K2, 0, [600, 100, 180, -1]), "bbox[0]", "non-positive w or h"),
    # x 596..686 in a 640-wide frame: 44/90 = 49 % inside, just under the 50 % tolerance
    ("box mostly outside", K1, _set_box(K1, 0, [596, 60, 90, 250]), "bbox[0]", "mostly outside"),
    ("box wholly outside", K3, _set_box(K3, 0, [900, 120, 120, 300]), "bbox[0]", "0% inside"),
    ("ed_time before st_time", K1, _set(K1, "ed_time", 4.0), "ed_time", ">= st_time"),
    ("empty sentence", K2, _set(K2, "English", "  "), "English", "non-empty"),
    ("row not an object", K3, lambda d: d.__setitem__(K3, [1, 2]), None, "not an object"),
    ("key without video suffix", "12_noext", lambda d: d.__setitem__("12_noext", d.pop(K1)), "key", "video file name"),
    ("same id as another row", "7_fixtureBBBB02.mp4", lambda d: d.__setitem__("7_fixtureBBBB02.mp4", dict(d[K2])), "key", "already used"),
]


@pytest.mark.parametrize("case,key,mutate,field,fragment", HC_BAD, ids=[c[0] for c in HC_BAD])
def test_hcstvg_bad_row(tmp_path, case, key, mutate, field, fragment):
    data = _hc_raw()
    mutate(data)
    path = _write(tmp_path / "val_v2.json", data)
    with pytest.raises(AnnotationError) as e:
        load_hcstvg(path)
    msg = str(e.value)
    assert str(path) in msg and repr(key) in msg and fragment in msg
    assert e.value.field == field and e.value.row == repr(key)
    assert "skip_bad=True" in msg or "pass" in msg  # says what to do
    # skip_bad: the bad row is reported, the others load whole
    got = load_hcstvg(path, skip_bad=True)
    assert isinstance(got, LoadedSamples) and len(got.skipped) == 1
    assert got.skipped[0] == SkippedRow(file=str(path), row=repr(key), field=field, message=msg)
    assert len(got) == len(data) - 1


# (case, box xywh for frame 0 of entry 1 (640 x 360), expected xyxy): tolerance edges that load
HC_CLIPPED = [
    ("2 px overshoot right", [552, 60, 90, 250], [552, 60, 640, 310]),
    ("1 px overshoot top-left", [-1, -1, 90, 250], [0, 0, 89, 249]),
    ("exactly half inside is kept", [595, 60, 90, 250], [595, 60, 640, 310]),
]


@pytest.mark.parametrize("case,xywh,xyxy", HC_CLIPPED, ids=[c[0] for c in HC_CLIPPED])
def test_hcstvg_small_overshoot_is_clipped(tmp_path, case, xywh, xyxy):
    data = _hc_raw()
    data[K1]["bbox"][0] = xywh
    s = load_hcstvg(_write(tmp_path / "a.json", data))[0]
    assert s.tube[120] == xyxy and s.extras["clipped_boxes"] == 1


def test_hcstvg_skip_bad_report_in_file_order(tmp_path, caplog):
    data = _hc_raw()
    data[K3]["bbox"].pop()
    data[K1].pop("English")
    path = _write(tmp_path / "a.json", data)
    with caplog.at_level(logging.WARNING):
        got = load_hcstvg(path, skip_bad=True)
    assert [s.id for s in got] == ["7_fixtureBBBB02"]
    assert [(r.row, r.field) for r in got.skipped] == [(repr(K1), "English"), (repr(K3), "bbox")]
    assert "skipped 2 bad rows" in caplog.text
    assert load_hcstvg(HC, skip_bad=True).skipped == []


# (case, top-level content, fragment): whole-file problems raise even with skip_bad
HC_BAD_FILES = [
    ("v2 test split query_v2.json", {K1: "a man walks.", K2: "a woman sits."}, "evaluated on the val split"),
    ("a list (VidSTG or TubeDETR _proc)", [{"vid": "1"}], "JSON list"),
    ("empty object", {}, "non-empty JSON object"),
]


@pytest.mark.parametrize("case,content,fragment", HC_BAD_FILES, ids=[c[0] for c in HC_BAD_FILES])
def test_hcstvg_bad_file(tmp_path, case, content, fragment):
    path = _write(tmp_path / "query_v2.json", content)
    with pytest.raises(AnnotationError, match=fragment) as e:
        load_hcstvg(path, skip_bad=True)
    assert str(path) in str(e.value)


def test_hcstvg_invalid_json_names_line_and_column(tmp_path):
    path = tmp_path / "val_v2.json"
    path.write_text('{\n  "a.mp4": {"st_frame": 1,,}\n}')
    with pytest.raises(AnnotationError, match=r"val_v2\.json.*line 2 column 27"):
        load_hcstvg(path)


@pytest.mark.parametrize(
    "kwargs",
    [{"version": 3}, {"convention": "inclusive"}, {"clip_seconds": 0}],  # each argument's bad value
)
def test_hcstvg_bad_arguments(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        load_hcstvg(HC, **kwargs)


def test_hcstvg_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="val_v2.json"):
        load_hcstvg(tmp_path / "val_v2.json")


# --------------------------------------------------------------------------- VidSTG fixture table

B1 = (30, [111, 78, 171, 278])
E1_EXCL, E1_INCL = (59, [111, 79, 171, 279]), (60, [112, 78, 172, 278])
CHILD = ((40, [507, 199, 657, 599]), (99, [553, 200, 703, 600]))
TOY = ((40, [564, 380, 624, 440]), (99, [587, 373, 647, 433]))
B3 = (10, [154, 198, 254, 278])
E3_EXCL, E3_INCL = (24, [168, 191, 268, 271]), (25, [171, 192, 271, 272])

# (convention, id, qtype, target_id, category, type, sentence, span, #boxes, first, last)
VS_TABLE = [
    ("exclusive", "9990000001_30_60_d0", "declarative", 0, "adult", "person", "an adult in red stands next to a brown dog.", (30, 59), 30, B1, E1_EXCL),
    ("exclusive", "9990000001_30_60_i0", "interrogative", 0, "adult", "person", "who stands next to the brown dog?", (30, 59), 30, B1, E1_EXCL),
    # end_fid == frame_count: frame 100 does not exist
    ("exclusive", "9990000002_40_100_d0", "declarative", 1, "child", "person", "a child in blue holds a red toy.", (40, 99), 60, *CHILD),
    ("exclusive", "9990000002_40_100_i0", "interrogative", 2, "toy", "object", "what does the child in blue hold?", (40, 99), 60, *TOY),
    ("exclusive", "9990000002_40_100_i1", "interrogative", 1, "child", "person", "who holds a red toy?", (40, 99), 60, *CHILD),
    ("exclusive", "9990000003_10_25_d0", "declarative", 0, "cat", "object", "a white cat is above the grey sofa.", (10, 24), 15, B3, E3_EXCL),
    # inclusive (STCAT / CG-STVG): one more frame, except where end_fid == frame_count (clamped)
    ("inclusive", "9990000001_30_60_d0", "declarative", 0, "adult", "person", "an adult in red stands next to a brown dog.", (30, 60), 31, B1, E1_INCL),
    ("inclusive", "9990000001_30_60_i0", "interrogative", 0, "adult", "person", "who stands next to the brown dog?", (30, 60), 31, B1, E1_INCL),
    ("inclusive", "9990000002_40_100_d0", "declarative", 1, "child", "person", "a child in blue holds a red toy.", (40, 99), 60, *CHILD),
    ("inclusive", "9990000002_40_100_i0", "interrogative", 2, "toy", "object", "what does the child in blue hold?", (40, 99), 60, *TOY),
    ("inclusive", "9990000002_40_100_i1", "interrogative", 1, "child", "person", "who holds a red toy?", (40, 99), 60, *CHILD),
    ("inclusive", "9990000003_10_25_d0", "declarative", 0, "cat", "object", "a white cat is above the grey sofa.", (10, 25), 16, B3, E3_INCL),
]

# vid -> (fps, frame_count, width, height, used_segment, temporal_gt, GT seconds [b/fps, e/fps) exclusive)
VS_META = {
    "9990000001": (29.97002997002997, 90, 640, 360, [0, 89], [30, 60], (1.001, 2.002)),
    "9990000002": (25.0, 100, 1280, 720, [20, 99], [40, 100], (1.6, 4.0)),
    "9990000003": (30.0, 75, 480, 640, [0, 74], [10, 25], (1 / 3, 25 / 30)),  # int fps, portrait
}


@pytest.mark.parametrize("convention,sid,qtype,tid,category,stype,sentence,span,n,first,last", VS_TABLE)
def test_vidstg_fixture_table(convention, sid, qtype, tid, category, stype, sentence, span, n, first, last):
    s = _by_id(load_vidstg(VS, VIDOR, convention=convention))[sid]
    vid = sid.split("_")[0]
    fps, frame_count, w, h, used, gt, seconds = VS_META[vid]
    assert (s.fps, s.num_frames, s.width, s.height, s.dataset, s.video) == (fps, frame_count, w, h, "vidstg", None)
    assert isinstance(s.fps, float)
    assert s.query == sentence and s.span_frames == span and len(s.tube) == n
    assert sorted(s.tube) == list(range(span[0], span[1] + 1))
    assert s.tube[first[0]] == first[1] and s.tube[last[0]] == last[1]
    x = s.extras
    assert (x["qtype"], x["target_id"], x["category"], x["sentence_type"], x["vid"]) == (qtype, tid, category, stype, vid)
    assert (x["used_segment"], x["temporal_gt"], x["convention"]) == (used, gt, convention)
    assert x["missing_box_frames"] == [] and x["repeated_frames"] == [] and x["clipped_boxes"] == 0
    if convention == "exclusive":
        assert s.span_seconds == pytest.approx(seconds)


def test_vidstg_counts_order_and_unique_ids():
    samples = load_vidstg(VS, VIDOR)
    assert len(samples) == 6 and not samples.skipped
    qtypes = [s.extras["qtype"] for s in samples]
    assert qtypes.count("declarative") == 3 and qtypes.count("interrogative") == 3
    # file order: entries in order, captions before questions
    assert [s.id for s in samples] == [
        "9990000001_30_60_d0", "9990000001_30_60_i0", "9990000002_40_100_d0",
        "9990000002_40_100_i0", "9990000002_40_100_i1", "9990000003_10_25_d0",
    ]
    assert [s.extras["entry_index"] for s in samples] == [0, 0, 1, 1, 1, 2]


def test_vidstg_duplicate_moment_gets_entry_suffix(vidstg_tree):
    _edit_json(vidstg_tree / "ann.json", lambda d: d.append(json.loads(json.dumps(d[2]))))
    ids = [s.id for s in load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor")]
    assert ids[-2:] == ["9990000003_10_25_d0", "9990000003_10_25_d0_e3"] and len(set(ids)) == 7


def test_vidstg_video_dir(vidstg_tree):
    vids = vidstg_tree / "videos"
    (vids / "0000").mkdir(parents=True)
    for v in ("9990000001", "9990000002"):
        (vids / "0000" / f"{v}.mp4").touch()
    (vids / "9990000003.mp4").touch()  # flat layout (CG-STVG): found by name
    samples = load_vidstg(VS, VIDOR, video_dir=vids)
    assert samples[0].video == str(vids / "0000" / "9990000001.mp4")
    assert samples[-1].video == str(vids / "9990000003.mp4")
    (vids / "9990000003.mp4").unlink()
    with pytest.raises(AnnotationError) as e:
        load_vidstg(VS, VIDOR, video_dir=vids)
    msg = str(e.value)
    assert VS.name in msg and "entry 2 (vid 9990000003)" in msg and str(vids / "0000" / "9990000003.mp4") in msg
    got = load_vidstg(VS, VIDOR, video_dir=vids, skip_bad=True)
    assert len(got) == 5 and [r.field for r in got.skipped] == ["video"]


# --------------------------------------------------------------------------- VidSTG gaps at and inside the GT


def _drop_box(vid: str, frame: int, tid: int) -> Callable[[dict], None]:
    return lambda d: d["trajectories"].__setitem__(frame, [b for b in d["trajectories"][frame] if b["tid"] != tid])


def _vidor_file(tree: Path, vid: str) -> Path:
    return tree / "vidor" / "validation" / "0000" / f"{vid}.json"


def test_vidstg_gap_inside_gt_is_left_out(vidstg_tree, caplog):
    _edit_json(_vidor_file(vidstg_tree, "9990000001"), _drop_box("9990000001", 45, 0))
    with caplog.at_level(logging.WARNING):
        s = load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor")[0]
    assert s.span_frames == (30, 59) and len(s.tube) == 29 and 45 not in s.tube
    assert s.extras["missing_box_frames"] == [45]
    assert "2 samples lack a VidOR box" in caplog.text  # the caption and the question


def test_vidstg_inclusive_repeats_missing_end_box(vidstg_tree):
    # the trajectory ends at end_fid - 1 = 59: STCAT repeats box 59 on the extra frame 60
    _edit_json(_vidor_file(vidstg_tree, "9990000001"), _drop_box("9990000001", 60, 0))
    s = load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor", convention="inclusive")[0]
    assert s.span_frames == (30, 60) and s.tube[60] == [111, 79, 171, 279] and s.extras["repeated_frames"] == [60]
    assert load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor")[0].extras["repeated_frames"] == []


# --------------------------------------------------------------------------- VidSTG bad input


def _entry(i: int, edit: Callable[[dict], Any]) -> Callable[[list], None]:
    return lambda d: edit(d[i])


# (case, mutation of the sentence file, row fragment, field, message fragment, samples left with skip_bad)
VS_BAD_ENTRIES = [
    ("missing temporal_gt", _entry(0, lambda e: e.pop("temporal_gt")), "entry 0 (vid 9990000001)", "temporal_gt", "missing", 4),
    ("fps a string", _entry(2, lambda e: e.update(fps="30")), "entry 2 (vid 9990000003)", "fps", "positive number", 5),
    ("gt end past frame_count", _entry(1, lambda e: e["temporal_gt"].update(end_fid=101)), "entry 1 (vid 9990000002)", "temporal_gt", "end <= frame_count", 3),
    ("empty gt", _entry(2, lambda e: e["temporal_gt"].update(end_fid=10)), "entry 2 (vid 9990000003)", "temporal_gt", "begin < end", 5),
    ("vid missing", _entry(0, lambda e: e.pop("vid")), "entry 0", "vid", "missing", 4),
    ("object without tid", _entry(1, lambda e: e["subject/objects"][0].pop("tid")), "entry 1 (vid 9990000002)", "subject/objects[0]", "'tid'", 3),
    ("questions not a list", _entry(0, lambda e: e.update(questions=None)), "entry 0 (vid 9990000001)", "questions", "list", 4),
    ("entry not an object", lambda d: d.__setitem__(2, "x"), "entry 2", None, "not an object", 5),
    # sentence-level: only that sentence is bad
    ("unknown target_id", _entry(1, lambda e: e["questions"][0].update(target_id=7)), "entry 1 (vid 9990000002, questions[0])", "questions[0].target_id", "tid 7 is not in", 5),
    ("target_id missing", _entry(0, lambda e: e["captions"][0].pop("target_id")), "entry 0 (vid 9990000001, captions[0])", "captions[0].target_id", "integer tid", 5),
    ("empty description", _entry(2, lambda e: e["captions"][0].update(description="")), "entry 2 (vid 9990000003, captions[0])", "captions[0].description", "non-empty", 5),
    # tid 5 is in subject/objects but has no box at all in the VidOR file
    ("target without VidOR boxes", _entry(0, lambda e: (e["subject/objects"].append({"tid": 5, "category": "ghost"}), e["captions"][0].update(target_id=5))), "entry 0 (vid 9990000001, captions[0])", "captions[0].target_id", "has a box on no frame", 5),
]


@pytest.mark.parametrize("case,mutate,row,field,fragment,left", VS_BAD_ENTRIES, ids=[c[0] for c in VS_BAD_ENTRIES])
def test_vidstg_bad_entry(vidstg_tree, case, mutate, row, field, fragment, left):
    ann = vidstg_tree / "ann.json"
    _edit_json(ann, mutate)
    with pytest.raises(AnnotationError) as e:
        load_vidstg(ann, vidstg_tree / "vidor")
    msg = str(e.value)
    assert str(ann) in msg and f"row {row}:" in msg and fragment in msg and e.value.field == field
    got = load_vidstg(ann, vidstg_tree / "vidor", skip_bad=True)
    # one report record per bad row: the entry for entry-level fields, else the sentence
    assert len(got) == left and len(got.skipped) == 1
    assert got.skipped[0].row == row and got.skipped[0].file == str(ann)


def _box_of(d: dict, frame: int, tid: int) -> dict:
    return next(b["bbox"] for b in d["trajectories"][frame] if b["tid"] == tid)


# (case, vid, mutation of its VidOR file (None: delete it), field, fragment, samples left, records skipped)
VS_BAD_VIDOR = [
    # file-level: every entry of that vid is skipped (one record per entry; here one entry each)
    ("VidOR file missing", "9990000003", None, "vid", "no VidOR box file 9990000003.json", 5, 1),
    ("no trajectories", "9990000002", lambda d: d.pop("trajectories"), "vid", "no 'trajectories' list", 3, 1),
    # sentence-level: both sentences of tid 0 of 9990000001 are skipped
    ("GT first frame without box", "9990000001", _drop_box("9990000001", 30, 0), "captions[0].target_id", "none on frame 30", 4, 2),
    ("GT last frame without box", "9990000003", _drop_box("9990000003", 24, 0), "captions[0].target_id", "none on frame 24", 5, 1),
    ("xmax <= xmin", "9990000002", lambda d: _box_of(d, 50, 1).update(xmax=507), "9990000002.json trajectories[50] tid 1", "non-positive width", 4, 2),
    # portrait 480 px wide: x 450..600 keeps 30/150 = 20 % inside
    ("box mostly outside", "9990000003", lambda d: _box_of(d, 12, 0).update(xmin=450, xmax=600), "9990000003.json trajectories[12] tid 0", "mostly outside", 5, 1),
    ("bbox corner missing", "9990000001", lambda d: _box_of(d, 31, 0).pop("ymax"), "9990000001.json trajectories[31] tid 0", "finite numbers", 4, 2),
]


@pytest.mark.parametrize("case,vid,mutate,field,fragment,left,n_skipped", VS_BAD_VIDOR, ids=[c[0] for c in VS_BAD_VIDOR])
def test_vidstg_bad_vidor(vidstg_tree, case, vid, mutate, field, fragment, left, n_skipped):
    ann, vidor = vidstg_tree / "ann.json", vidstg_tree / "vidor"
    if mutate is None:
        _vidor_file(vidstg_tree, vid).unlink()
    else:
        _edit_json(_vidor_file(vidstg_tree, vid), mutate)
    with pytest.raises(AnnotationError) as e:
        load_vidstg(ann, vidor)
    msg = str(e.value)
    assert str(ann) in msg and f"(vid {vid}" in msg and fragment in msg and field in e.value.field
    got = load_vidstg(ann, vidor, skip_bad=True)
    assert len(got) == left and len(got.skipped) == n_skipped


def test_vidstg_missing_vidor_file_says_which_split(vidstg_tree):
    _vidor_file(vidstg_tree, "9990000002").unlink()
    with pytest.raises(AnnotationError, match="test boxes are in VidOR annotation/validation"):
        load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor")


def test_vidstg_inclusive_end_before_last_frame(vidstg_tree):
    # an entry whose end_fid + 1 == frame_count: inclusive takes end_fid itself (no clamp needed)
    _edit_json(vidstg_tree / "ann.json", _entry(0, lambda e: e["temporal_gt"].update(end_fid=89)))
    s = load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor", convention="inclusive")[0]
    assert s.span_frames == (30, 89) and s.tube[89] == [103, 79, 163, 279]


def test_vidstg_invalid_vidor_json(vidstg_tree):
    path = _vidor_file(vidstg_tree, "9990000002")
    path.write_text('{"version": "VERSION 1.0",\n "trajectories": [}')
    with pytest.raises(AnnotationError) as e:
        load_vidstg(vidstg_tree / "ann.json", vidstg_tree / "vidor")
    msg = str(e.value)
    assert str(path) in msg and "line 2 column 19" in msg and "entry 1 (vid 9990000002)" in msg


# (case, content of the sentence file, fragment): whole-file problems raise even with skip_bad
VS_BAD_FILES = [
    ("TubeDETR preprocessed", {"videos": [], "trajectories": {}}, "TubeDETR's preprocessed"),
    ("HC-STVG file", {K1: {}}, "not a JSON list"),
    ("empty list", [], "empty"),
]


@pytest.mark.parametrize("case,content,fragment", VS_BAD_FILES, ids=[c[0] for c in VS_BAD_FILES])
def test_vidstg_bad_file(tmp_path, case, content, fragment):
    path = _write(tmp_path / "test_annotations.json", content)
    with pytest.raises(AnnotationError, match=fragment):
        load_vidstg(path, VIDOR, skip_bad=True)


def test_vidstg_invalid_sentence_json(tmp_path):
    path = tmp_path / "test_annotations.json"
    path.write_text("[\n {\"vid\": \"1\"\n]")
    with pytest.raises(AnnotationError, match=r"test_annotations\.json.*line 3 column 1"):
        load_vidstg(path, VIDOR)


def test_vidstg_vidor_dir_problems(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotation/validation"):
        load_vidstg(VS, tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no VidOR box files"):
        load_vidstg(VS, tmp_path)
    with pytest.raises(ValueError, match="convention"):
        load_vidstg(VS, VIDOR, convention="official")


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "load",
    [
        lambda: load_hcstvg(HC, convention="tubedetr"),  # dropped_frames list in extras
        lambda: load_vidstg(VS, VIDOR, convention="inclusive"),  # float fps, nested extras
    ],
    ids=["hcstvg", "vidstg"],
)
def test_round_trips(tmp_path, load):
    samples = load()
    assert from_dataset(to_dataset(samples)) == list(samples)
    assert read_jsonl(write_jsonl(samples, tmp_path / "s.jsonl")) == list(samples)


# --------------------------------------------------------------------------- conventions and property tests


# (st_frame, n_boxes, convention, frames): the HC-STVG mapping on its own
HC_FRAMES = [
    (1, 3, "official", [0, 1, 2]),  # first frame of the video
    (1, 3, "stcat", [0, 1, 2]),
    (1, 3, "tubedetr", [1, 2, 3]),  # shifted one later
]


@pytest.mark.parametrize("st,n,convention,frames", HC_FRAMES)
def test_hcstvg_box_frames(st, n, convention, frames):
    assert list(hcstvg_box_frames(st, n, convention)) == frames


# (begin, end, frame_count, convention, frames)
VS_FRAMES = [
    (3, 6, 10, "exclusive", [3, 4, 5]),
    (3, 6, 10, "inclusive", [3, 4, 5, 6]),
    (3, 10, 10, "exclusive", [3, 4, 5, 6, 7, 8, 9]),  # end_fid == frame_count
    (3, 10, 10, "inclusive", [3, 4, 5, 6, 7, 8, 9]),  # frame 10 does not exist: clamped
]


@pytest.mark.parametrize("b,e,count,convention,frames", VS_FRAMES)
def test_vidstg_gt_frames(b, e, count, convention, frames):
    assert list(vidstg_gt_frames(b, e, count, convention)) == frames


# (box, frame w, h, result or None for an error)
FIT = [
    ([0, 0, 10, 10], 10, 10, ([0, 0, 10, 10], False)),  # touching the border is inside
    ([-2, 0, 8, 10], 10, 10, ([0, 0, 8, 10], True)),  # 80 % inside: clipped
    ([5, 0, 15, 10], 10, 10, ([5, 0, 10, 10], True)),  # exactly 50 %: clipped
    ([6, 0, 16, 10], 10, 10, None),  # 40 %: error
    ([3, 3, 3, 5], 10, 10, None),  # zero width
    ([3, 5, 4, 4], 10, 10, None),  # y2 < y1
]


@pytest.mark.parametrize("box,w,h,expected", FIT)
def test_fit_box(box, w, h, expected):
    if expected is None:
        with pytest.raises(ValueError):
            fit_box(box, w, h)
    else:
        assert fit_box(box, w, h) == expected


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 700) | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["st_frame", "ed_frame", "st_time", "ed_time", "img_num", "img_size", "bbox", "English"]), value=_json_values)
def test_hcstvg_any_field_value_loads_or_raises_annotation_error(field, value):
    # parsing arbitrary JSON values never escapes as KeyError / TypeError / IndexError
    data = _hc_raw()
    data[K2][field] = value
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d) / "a.json", data)
        got = load_hcstvg(path, skip_bad=True)
    assert len(got) + len(got.skipped) == 3
    assert all(r.row == repr(K2) for r in got.skipped)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["vid", "fps", "frame_count", "width", "height", "used_segment", "temporal_gt", "subject/objects", "captions", "questions"]),
    value=_json_values,
)
def test_vidstg_any_field_value_loads_or_raises_annotation_error(field, value):
    data = json.loads(VS.read_text())
    data[1][field] = value
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d) / "a.json", data)
        got = load_vidstg(path, VIDOR, skip_bad=True)
    assert len(got) + len(got.skipped) >= 3  # entries 0 and 2 always load (3 samples)
    assert all("entry 1" in r.row for r in got.skipped)


@settings(max_examples=40, deadline=None)
@given(img_num=st.integers(1, 60), data=st.data())
def test_hcstvg_conventions_agree_up_to_the_shift(img_num, data):
    # a random valid row: official and stcat give the same tube; tubedetr is it shifted by one,
    # minus the box that would land on frame img_num
    st_frame = data.draw(st.integers(1, img_num))
    n = data.draw(st.integers(1, img_num - st_frame + 1))
    boxes = [[i, 1, 2, 3] for i in range(n)]
    row = {"st_frame": st_frame, "ed_frame": st_frame + n - 1, "st_time": 0.0, "ed_time": 1.0,
           "img_num": img_num, "img_size": [10, 100], "bbox": boxes, "English": "x"}
    with tempfile.TemporaryDirectory() as d:
        path = _write(Path(d) / "a.json", {"v.mp4": row})
        off, stc = (load_hcstvg(path, convention=c)[0].tube for c in ("official", "stcat"))
        tub = load_hcstvg(path, convention="tubedetr", skip_bad=True)
    assert off == stc and sorted(off) == list(range(st_frame - 1, st_frame - 1 + n))
    shifted = {f + 1: b for f, b in off.items() if f + 1 < img_num}
    if shifted:
        assert tub[0].tube == shifted
    else:  # a one-box tube on the last frame has no box left under tubedetr
        assert tub == [] and tub.skipped[0].field == "bbox"
