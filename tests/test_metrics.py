"""stvg_lab.metrics: hand-computed m_tIoU / m_vIoU / vIoU@R and TubeDETR's evaluation frames."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stvg_lab.metrics import evaluate, evaluate_by_group, tube_to_arrays, tubedetr_sampled_frames

SQ = [0, 0, 10, 10]  # 10x10 box, area 100
HALF = [0, 0, 10, 5]  # top half of SQ: IoU(SQ, HALF) = 50 / 100 = 0.5


def tube(frames, box=SQ) -> dict[int, list[float]]:
    return {f: list(box) for f in frames}


# (name, pred tube, gt tube, eval frames or None, expected tIoU, expected vIoU)
SINGLE_CASES = [
    # identical tubes: every metric is 1
    ("perfect", tube(range(10, 20)), tube(range(10, 20)), None, 1.0, 1.0),
    # prediction entirely after the gt: empty intersection, both 0
    ("disjoint", tube(range(20, 30)), tube(range(0, 10)), None, 0.0, 0.0),
    # extents touch without sharing a frame (0..9 vs 10..19): still 0
    ("adjacent", tube(range(10, 20)), tube(range(0, 10)), None, 0.0, 0.0),
    # gt 0..9, pred 5..14 with IoU 0.5 boxes: |I| = 5, |U| = 15, vIoU = 5 * 0.5 / 15
    ("partial", tube(range(5, 15), HALF), tube(range(0, 10)), None, 5 / 15, 2.5 / 15),
    # one-frame tubes on the same frame, boxes [0,0,4,4] vs [2,0,6,4]: IoU 8 / 24
    ("one_frame", {7: [2, 0, 6, 4]}, {7: [0, 0, 4, 4]}, None, 1.0, 1 / 3),
    # one-frame tubes one frame apart: no overlap on the frame axis
    ("one_frame_apart", {8: SQ}, {7: SQ}, None, 0.0, 0.0),
    # pred nested in gt (3..6 in 0..9): tIoU = 4 / 10, vIoU = 4 * 1 / 10
    ("nested", tube(range(3, 7)), tube(range(0, 10)), None, 0.4, 0.4),
    # pred has a gap at frame 5: its extent is still 0..9, and frame 5 scores IoU 0
    ("pred_gap", tube([0, 1, 2, 3, 4, 6, 7, 8, 9]), tube(range(0, 10)), None, 1.0, 0.9),
    # gt has a gap at frames 4 and 5: both score 0 in the intersection
    ("gt_gap", tube(range(0, 10)), tube([0, 1, 2, 3, 6, 7, 8, 9]), None, 1.0, 0.8),
    # zero-area predicted boxes: the extents match, but every box IoU is 0
    ("zero_area_boxes", tube(range(0, 4), [5, 5, 5, 5]), tube(range(0, 4)), None, 1.0, 0.0),
    # eval frames restrict both sides: I ∩ E = {6, 8}, U ∩ E = {0, 4, 6, 8, 12} -> 2 / 5.
    # tIoU ignores E (5 / 15)
    ("eval_frames", tube(range(5, 15)), tube(range(0, 10)), [0, 4, 6, 8, 12, 20], 5 / 15, 0.4),
    # eval frames given as strings, unsorted and repeated: same as the line above
    ("eval_frames_str", tube(range(5, 15)), tube(range(0, 10)), ["12", "6", "0", "8", "4", "20", "6"], 5 / 15, 0.4),
    # no eval frame in the union: TubeDETR divides by max(0, 1), so vIoU is 0
    ("eval_frames_empty_union", tube(range(5, 15)), tube(range(0, 10)), [20, 30], 5 / 15, 0.0),
    # no eval frames at all: vIoU 0 without a ZeroDivisionError
    ("eval_frames_none_given", tube(range(5, 15)), tube(range(0, 10)), [], 5 / 15, 0.0),
    # eval frames hit the union but not the intersection (0 and 12 only): 0 / 2
    ("eval_frames_miss_inter", tube(range(5, 15)), tube(range(0, 10)), [0, 12], 5 / 15, 0.0),
]


@pytest.mark.parametrize("name,pred,gt,ef,t_exp,v_exp", SINGLE_CASES, ids=[c[0] for c in SINGLE_CASES])
def test_single_sample(name, pred, gt, ef, t_exp, v_exp):
    res = evaluate({"a": pred}, {"a": gt}, eval_frames=None if ef is None else {"a": ef}, per_sample=True)
    assert res["m_tIoU"] == pytest.approx(t_exp, abs=1e-12)
    assert res["m_vIoU"] == pytest.approx(v_exp, abs=1e-12)
    assert res["vIoU@0.3"] == (1.0 if v_exp > 0.3 else 0.0)
    assert res["vIoU@0.5"] == (1.0 if v_exp > 0.5 else 0.0)
    assert (res["n"], res["n_missing"], res["n_extra"]) == (1, 0, 0)


def test_threshold_is_strict():
    # vIoU = 3 / 10 = 0.3 exactly (3 perfect frames over a 10-frame union) does not count
    # for vIoU@0.3, and vIoU = 2 / 4 = 0.5 exactly does not count for vIoU@0.5
    res = evaluate(
        {"a": tube(range(0, 3)), "b": tube(range(0, 2))},
        {"a": tube(range(0, 10)), "b": tube(range(0, 4))},
        per_sample=True,
    )
    assert res["per_sample"]["a"]["vIoU"] == 0.3
    assert res["per_sample"]["b"]["vIoU"] == 0.5
    assert res["vIoU@0.3"] == 0.5  # only b (0.5 > 0.3)
    assert res["vIoU@0.5"] == 0.0


def test_missing_predictions_are_counted_as_zero():
    gts = {"a": tube(range(10)), "b": tube(range(10)), "c": tube(range(10)), "d": tube(range(10))}
    # a perfect, b absent, c an empty tube, d None: three missing, all in n
    res = evaluate({"a": tube(range(10)), "c": {}, "d": None}, gts, per_sample=True)
    assert res["m_tIoU"] == 0.25 and res["m_vIoU"] == 0.25
    assert res["vIoU@0.3"] == 0.25 and res["vIoU@0.5"] == 0.25
    assert (res["n"], res["n_missing"], res["n_extra"]) == (4, 3, 0)
    ps = res["per_sample"]
    assert ps["b"] == {"gt_span": (0, 9), "pred_span": None, "tIoU": 0.0, "vIoU": 0.0, "iou_sum": 0.0,
                       "n_inter": 0, "n_union": 10, "missing": True}


def test_extra_predictions_are_ignored_and_counted():
    res = evaluate({"a": tube(range(10)), "zz": tube(range(10)), "yy": {}}, {"a": tube(range(10))})
    assert (res["m_vIoU"], res["n"], res["n_missing"], res["n_extra"]) == (1.0, 1, 0, 2)


def test_string_frame_keys_after_json_round_trip():
    # the "partial" case with every key a string: the same numbers
    pred, gt = tube(range(5, 15), HALF), tube(range(0, 10))
    pred_s, gt_s = json.loads(json.dumps(pred)), json.loads(json.dumps(gt))
    assert all(isinstance(k, str) for k in pred_s)
    assert evaluate({"a": pred_s}, {"a": gt_s}) == evaluate({"a": pred}, {"a": gt})
    # mixed: string pred keys against int gt keys
    assert evaluate({"a": pred_s}, {"a": gt})["m_vIoU"] == pytest.approx(2.5 / 15)


def test_per_sample_record():
    res = evaluate({"a": tube(range(5, 15), HALF)}, {"a": tube(range(0, 10))}, per_sample=True)
    rec = res["per_sample"]["a"]
    assert rec["gt_span"] == (0, 9) and rec["pred_span"] == (5, 14)
    assert (rec["n_inter"], rec["n_union"], rec["missing"]) == (5, 15, False)
    assert rec["iou_sum"] == pytest.approx(2.5)
    assert rec["tIoU"] == pytest.approx(1 / 3) and rec["vIoU"] == pytest.approx(1 / 6)
    assert "per_sample" not in evaluate({"a": tube(range(3))}, {"a": tube(range(3))})


def test_averages_over_samples():
    # perfect (1, 1) + partial (1/3, 1/6) + disjoint (0, 0)
    gts = {"p": tube(range(10)), "q": tube(range(10)), "r": tube(range(10))}
    preds = {"p": tube(range(10)), "q": tube(range(5, 15), HALF), "r": tube(range(50, 60))}
    res = evaluate(preds, gts)
    assert res["m_tIoU"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert res["m_vIoU"] == pytest.approx((1 + 1 / 6 + 0) / 3)
    assert res["vIoU@0.3"] == pytest.approx(1 / 3) and res["vIoU@0.5"] == pytest.approx(1 / 3)


def test_custom_thresholds():
    res = evaluate({"a": tube(range(0, 3))}, {"a": tube(range(0, 10))}, thresholds=(0.1, 0.7))
    assert res["vIoU@0.1"] == 1.0 and res["vIoU@0.7"] == 0.0 and "vIoU@0.3" not in res


def test_evaluate_by_group():
    gts = {"d1": tube(range(10)), "d2": tube(range(10)), "i1": tube(range(10))}
    preds = {"d1": tube(range(10)), "d2": tube(range(50, 60)), "i1": tube(range(5, 15), HALF), "x": {}}
    groups = {"d1": "declarative", "d2": "declarative", "i1": "interrogative", "unused": "declarative"}
    out = evaluate_by_group(preds, gts, groups)
    assert set(out) == {"declarative", "interrogative", "all"}
    assert out["declarative"]["m_tIoU"] == 0.5 and out["declarative"]["n"] == 2
    assert out["interrogative"]["m_vIoU"] == pytest.approx(1 / 6) and out["interrogative"]["n"] == 1
    assert out["all"] == evaluate(preds, gts)  # n_extra (1) is reported under "all"
    assert out["declarative"]["n_extra"] == 0


# (name, pred tube of sample "s1", substrings the error message must contain)
BAD_PREDS = [
    # three coordinates
    ("short_box", {0: [0, 0, 1, 1], 3: [0, 0, 1]}, ["'s1'", "frame 3", "4 finite numbers"]),
    # a string inside a box
    ("str_coord", {0: [0, 0, 1, 1], 2: [0, 0, 1, "x"]}, ["'s1'", "frame 2"]),
    # NaN coordinate
    ("nan_coord", {0: [0, 0, 1, math.nan]}, ["'s1'", "frame 0"]),
    # a box that is not a sequence
    ("none_box", {4: None}, ["'s1'", "frame 4"]),
    # every box the wrong length (a regular (n, 5) array)
    ("five_coords", {0: [0, 0, 1, 1, 1], 1: [0, 0, 1, 1, 1]}, ["'s1'", "frame 0"]),
    # non-integral frame key
    ("float_key", {1.5: [0, 0, 1, 1]}, ["'s1'", "1.5"]),
    # non-numeric string key
    ("word_key", {"first": [0, 0, 1, 1]}, ["'s1'", "'first'"]),
    # the same frame twice, once as int and once as str
    ("dup_key", {5: [0, 0, 1, 1], "5": [0, 0, 1, 1]}, ["'s1'", "frame 5 appears twice"]),
]


@pytest.mark.parametrize("name,pred,parts", BAD_PREDS, ids=[c[0] for c in BAD_PREDS])
def test_malformed_prediction_names_sample_and_frame(name, pred, parts):
    with pytest.raises(ValueError) as err:
        evaluate({"s1": pred}, {"s1": tube(range(5))})
    for part in parts:
        assert part in str(err.value)


def test_malformed_gt_is_named_as_gt():
    with pytest.raises(ValueError, match=r"gt tube of sample 'g', frame 1"):
        evaluate({}, {"g": {0: SQ, 1: [1, 2]}})


# (name, kwargs for evaluate / evaluate_by_group, message fragment); each is an input error
BAD_CALLS = [
    # nothing to average over
    ("empty_gts", dict(preds={}, gts={}), "gts is empty"),
    # a gt without a single box has no extent
    ("empty_gt_tube", dict(preds={}, gts={"g": {}}), "gt tube of sample 'g' is empty"),
    # eval_frames must cover every gt id
    ("eval_frames_missing_id", dict(preds={}, gts={"g": tube(range(3))}, eval_frames={}), "no entry for sample 'g'"),
]


@pytest.mark.parametrize("name,kwargs,msg", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_calls(name, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        evaluate(**kwargs)


def test_bad_groups():
    gts = {"a": tube(range(3)), "b": tube(range(3))}
    # b has no group
    with pytest.raises(ValueError, match="no group, e.g. 'b'"):
        evaluate_by_group({}, gts, {"a": "declarative"})
    # "all" is reserved
    with pytest.raises(ValueError, match='named "all"'):
        evaluate_by_group({}, gts, {"a": "all", "b": "x"})


def test_tube_to_arrays_sorts_and_types():
    frames, boxes = tube_to_arrays({"3": [1, 2, 3, 4], 1: (5, 6, 7, 8)}, "s", "pred")
    assert frames.tolist() == [1, 3] and frames.dtype.kind == "i"
    assert boxes.tolist() == [[5, 6, 7, 8], [1, 2, 3, 4]] and boxes.dtype.kind == "f"
    assert tube_to_arrays(None)[1].shape == (0, 4)


# TubeDETR's 5 fps evaluation frames for the fixtures of /work/shared/formats/README.md.
# (name, start, end, fps, expected frame list, (tube start, tube end) half-open, frames inside)
SAMPLER_CASES = [
    # HC-STVG entry 1: img_num 600 -> fps 30, start 0, end img_num - 1; tube [121, 166)
    ("hcstvg_1", 0, 599, 600 / 20, list(range(0, 595, 6)), (121, 166), [126, 132, 138, 144, 150, 156, 162]),
    # HC-STVG entry 2: img_num 500 -> fps 25; tube [1, 31) starts on the video's first frame
    ("hcstvg_2", 0, 499, 500 / 20, list(range(0, 496, 5)), (1, 31), [5, 10, 15, 20, 25, 30]),
    # HC-STVG entry 3: img_num 480 -> fps 24, a rate of 5/24 with uneven steps (4 or 5 frames);
    # tube [444, 481) runs past the last frame 479, which is never sampled
    ("hcstvg_3", 0, 479, 480 / 20,
     [math.ceil(k * 24 / 5) for k in range(100)], (444, 481), [447, 452, 456, 461, 466, 471, 476]),
    # VidSTG 9990000001: NTSC fps, used_segment [0, 89], GT [30, 60)
    ("vidstg_1", 0, 89, 29.97002997002997, list(range(0, 85, 6)), (30, 60), [30, 36, 42, 48, 54]),
    # VidSTG 9990000002: int fps 25, segment starting at 20, GT [40, 100) ends at frame_count
    ("vidstg_2", 20, 99, 25, list(range(20, 96, 5)), (40, 100), list(range(40, 96, 5))),
    # VidSTG 9990000003: int fps 30, used_segment [0, 74], GT [10, 25)
    ("vidstg_3", 0, 74, 30, list(range(0, 73, 6)), (10, 25), [12, 18, 24]),
]


@pytest.mark.parametrize("name,start,end,fps,expected,span,inside", SAMPLER_CASES, ids=[c[0] for c in SAMPLER_CASES])
def test_tubedetr_sampled_frames_fixtures(name, start, end, fps, expected, span, inside):
    frames = tubedetr_sampled_frames(start, end, fps)
    assert frames == expected
    assert [f for f in frames if span[0] <= f < span[1]] == inside
    assert end not in frames  # range(start, end) never reaches end


# (name, args, kwargs, expected)
SAMPLER_EDGES = [
    # video at 5 fps: every frame kept, 2000 > 200, so frames[(j * 2000) // 200] = 10 j
    ("max_len_subsample", (0, 2000, 5.0), {}, list(range(0, 2000, 10))),
    # exactly video_max_len frames: no subsampling
    ("max_len_exact", (0, 200, 5.0), {}, list(range(200))),
    # an empty range keeps just the start frame
    ("end_before_start", (7, 7, 30.0), {}, [7]),
    # fps below video_fps (no downsampling possible): every frame once
    ("upsampling", (0, 5, 2.0), {}, [0, 1, 2, 3, 4]),
    # a smaller cap: 100 frames down to 3 = frames[0], frames[33], frames[66]
    ("small_cap", (0, 599, 30.0), {"video_max_len": 3}, [0, 198, 396]),
]


@pytest.mark.parametrize("name,args,kwargs,expected", SAMPLER_EDGES, ids=[c[0] for c in SAMPLER_EDGES])
def test_tubedetr_sampled_frames_edges(name, args, kwargs, expected):
    assert tubedetr_sampled_frames(*args, **kwargs) == expected


@pytest.mark.parametrize("kwargs", [dict(fps=0), dict(fps=-25.0), dict(fps=25.0, video_fps=0), dict(fps=25.0, video_max_len=0)])
def test_tubedetr_sampled_frames_rejects_bad_rates(kwargs):
    with pytest.raises(ValueError):
        tubedetr_sampled_frames(0, 100, **kwargs)


def _reference_scores(pred: dict, gt: dict, ef: list | None) -> tuple[float, float]:
    """Frame-by-frame restatement of the definitions, for comparison with the vectorised code."""
    from stvg_lab.geometry import box_iou

    gs, ge = min(gt), max(gt)
    if not pred:
        return 0.0, 0.0
    ps, pe = min(pred), max(pred)
    in_gt = set(range(gs, ge + 1))
    in_pred = set(range(ps, pe + 1))
    inter, union = in_gt & in_pred, in_gt | in_pred
    tiou = len(inter) / len(union)
    if ef is not None:
        inter, union = inter & set(ef), union & set(ef)
    num = sum(float(box_iou(pred[f], gt[f])) for f in inter if f in pred and f in gt)
    return tiou, num / max(len(union), 1)


small_box = st.tuples(*[st.integers(0, 6)] * 4).map(list)
small_tube = st.dictionaries(st.integers(0, 15), small_box, max_size=8)


@settings(max_examples=150, deadline=None)
@given(
    pred=small_tube,
    gt=small_tube.filter(bool),
    ef=st.none() | st.lists(st.integers(0, 15), max_size=10),
)
def test_matches_frame_by_frame_reference(pred, gt, ef):
    # random sparse tubes with gaps, zero-area and inverted boxes, optional eval frames
    res = evaluate({"a": pred}, {"a": gt}, eval_frames=None if ef is None else {"a": ef})
    t_ref, v_ref = _reference_scores(pred, gt, ef)
    assert res["m_tIoU"] == pytest.approx(t_ref, abs=1e-12)
    assert res["m_vIoU"] == pytest.approx(v_ref, abs=1e-12)
    assert 0.0 <= res["m_vIoU"] <= 1.0 and 0.0 <= res["m_tIoU"] <= 1.0
    if ef is None:  # sum of per-frame IoU <= |I|, so vIoU <= |I| / |U| = tIoU
        assert res["m_vIoU"] <= res["m_tIoU"] + 1e-12
