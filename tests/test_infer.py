"""stvg_lab.infer and stvg_lab.evaluate: tiny model built, saved, reloaded, predicted and scored end to end."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from stvg_lab.answer import FORMATS, format_answer, get_format
from stvg_lab.data.synth import SynthConfig, generate_synthetic, load_synthetic
from stvg_lab.evaluate import (
    METRICS_FILE,
    OWN_SPAN_CONTROL,
    PER_SAMPLE_FILE,
    PREDICTIONS_FILE,
    ANSWERS_STAMP_FILE,
    REWARD_TERMS,
    answer_rewards,
    evaluate_command,
    evaluate_model,
    eval_frames_for,
    gt_area_ratio,
    load_split,
    metrics_table,
    score_predictions,
)
from stvg_lab.infer import (
    BUDGET_SLACK_TOKENS,
    Prediction,
    answer_token_budget,
    make_prediction,
    predict,
    read_predictions,
)
from stvg_lab.model import build_tiny_model, load_model
from stvg_lab.video import load_clip, tube_to_model

TABLE9 = ("latency_s", "generated_tokens", "peak_mem_bytes")


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """ONE tiny model per session: built, saved, reloaded through load_model."""
    path = build_tiny_model(tmp_path_factory.mktemp("tiny_infer"))
    model, processor = load_model(path, device="cpu")
    return path, model, processor


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """The default synthetic set (8 fps: 2 fps sampling keeps every 4th frame)."""
    root = tmp_path_factory.mktemp("synth_infer") / "data"
    generate_synthetic(root, 4, 2, 3, seed=0, progress=False, workers=1)
    return root


@pytest.fixture(scope="session")
def synth_2fps(tmp_path_factory):
    """Videos at 2 fps: the model sees every frame, so a perfect answer maps back exactly."""
    root = tmp_path_factory.mktemp("synth_infer_2fps") / "data"
    generate_synthetic(root, 2, 1, 3, seed=1, config=SynthConfig(fps=2.0), progress=False, workers=1)
    return root


def perfect_answers(samples, fmt):
    """The ground truth of each sample as the answer text of ``fmt`` (model frames and pixels)."""
    out = []
    for s in samples:
        clip = load_clip(s)
        span, boxes = tube_to_model(s, clip.frame_numbers, clip.size)
        out.append(format_answer(span, boxes, boxes, fmt))
    return out


def fake_generate(processor, answers, calls):
    """A ``generate`` that emits the queued answers (then ``<|im_end|>``), one per batch row, in order."""
    tok = processor.tokenizer
    pad = tok.convert_tokens_to_ids("<|endoftext|>")

    def generate(input_ids, **kwargs):
        rows = [tok(answers.pop(0) + "<|im_end|>", add_special_tokens=False)["input_ids"] for _ in range(input_ids.shape[0])]
        calls.append({"batch": input_ids.shape[0], "max_new_tokens": kwargs["max_new_tokens"], "lengths": [len(r) for r in rows]})
        width = max(len(r) for r in rows)
        new = torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=input_ids.dtype)
        return torch.cat([input_ids, new], dim=1)

    return generate




def test_untrained_model_predicts_without_crashing(tiny, synth, tmp_path):
    _, model, processor = tiny
    samples = load_synthetic(synth, "test")
    out = tmp_path / "preds.jsonl"
    preds = predict(model, processor, samples, max_new_tokens=12, batch_size=2, out_path=out, progress=False)
    assert [p.id for p in preds] == [s.id for s in samples]
    # an untrained model emits junk: every answer is recorded with its parse error, tubes empty
    assert all(p.error is not None and p.pred_tube == {} for p in preds)
    back = read_predictions(out)
    assert [p.to_dict() for p in back] == [p.to_dict() for p in preds]
    for p in preds:
        assert p.latency_s > 0 and 1 <= p.generated_tokens <= 12
        assert p.peak_mem_bytes > 0 and p.mem_measure == "cpu_rss_peak"
        assert p.batch_size in (1, 2) and p.backend == "hf"
        assert len(p.frame_numbers) == 8 and p.model_size == (112, 112)


def test_evaluate_model_writes_three_files(tiny, synth, tmp_path):
    path, model, processor = tiny
    samples = load_synthetic(synth, "test")
    report = evaluate_model(
        path, samples, tmp_path, "paper", train_samples=load_synthetic(synth, "train"),
        max_new_tokens=8, batch_size=3, progress=False, model=model, processor=processor,
    )
    for name in (PREDICTIONS_FILE, METRICS_FILE, PER_SAMPLE_FILE):
        assert (tmp_path / name).is_file(), name
    metrics = json.loads((tmp_path / METRICS_FILE).read_text())
    assert metrics == json.loads(json.dumps(report.metrics))
    for tube in ("pred", "think"):
        assert set(metrics[tube]) >= {"m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5", "n", "n_missing"}
        assert metrics[tube]["n"] == 3 and metrics[tube]["n_missing"] == 3  # junk answers score 0
    assert metrics["parse_failure_rate"] == 1.0
    assert set(metrics["baselines"]) == {"whole video + mean box", "gt span + mean box"}
    assert metrics["baselines"]["gt span + mean box"]["m_tIoU"] == 1.0  # the oracle span
    for key in ("mean_latency_s", "mean_generated_tokens", "mean_peak_mem_bytes"):
        assert metrics[key] > 0, key
    rows = [json.loads(line) for line in (tmp_path / PER_SAMPLE_FILE).read_text().splitlines()]
    assert [r["id"] for r in rows] == [s.id for s in samples]
    assert set(rows[0]["tags"]) >= {"small", "short", "occluded"}
    assert 0 < rows[0]["gt_area_ratio"] < 1
    assert "| baseline: gt span + mean box | 100.0 |" in report.markdown()




def test_resume_skips_done_ids(tiny, synth, tmp_path, monkeypatch):
    _, model, processor = tiny
    samples = load_synthetic(synth, "test")
    out = tmp_path / "preds.jsonl"
    answers, calls = perfect_answers(samples, "paper"), []
    monkeypatch.setattr(model, "generate", fake_generate(processor, answers, calls))
    first = predict(model, processor, samples[:2], out_path=out, progress=False)
    assert [c["batch"] for c in calls] == [2]
    again = predict(model, processor, samples, out_path=out, progress=False)
    # only the third sample is asked; the first two come back from the file unchanged
    assert [c["batch"] for c in calls] == [2, 1]
    assert [p.to_dict() for p in again[:2]] == [p.to_dict() for p in first]
    assert len(out.read_text().splitlines()) == 3


def _in_place(ckpt, out):
    (ckpt / "config.json").write_text((ckpt / "config.json").read_text() + " ")  # new bytes at the same path
    return ckpt, {}


def _unstamped(ckpt, out):
    (out / ANSWERS_STAMP_FILE).unlink()
    return ckpt, {}


def _stamp_broken(ckpt, out):
    (out / ANSWERS_STAMP_FILE).write_text('{"weights": ')  # cut short, e.g. edited by hand
    return ckpt, {}


RESUME_CASES = [
    # (id, change between the two evaluations -> (model_path, evaluate_model kwargs), samples asked the 2nd time of 3)
    ("same weights, same decoding", lambda ckpt, out: (ckpt, {}), 1),
    ("weights replaced in place", _in_place, 3),
    ("same weights moved to another folder", lambda ckpt, out: (shutil.copytree(ckpt, ckpt.parent / "moved"), {}), 1),
    ("sampled instead of greedy", lambda ckpt, out: (ckpt, {"do_sample": True}), 3),
    ("another token budget", lambda ckpt, out: (ckpt, {"max_new_tokens": 300}), 3),
    ("answers written before stamps existed", _unstamped, 3),
    ("a stamp that does not read", _stamp_broken, 3),
    ("resume=False", lambda ckpt, out: (ckpt, {"resume": False}), 3),
]


@pytest.mark.parametrize("case, change, asked", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_evaluate_model_resumes_only_answers_of_the_same_weights_and_decoding(tiny, synth, tmp_path, monkeypatch, caplog,
                                                                             case, change, asked):
    path, model, processor = tiny
    samples = load_synthetic(synth, "test")
    ckpt, out = shutil.copytree(path, tmp_path / "ckpt"), tmp_path / "eval"
    answers, calls = perfect_answers(samples, "paper") * 2, []
    monkeypatch.setattr(model, "generate", fake_generate(processor, answers, calls))
    evaluate_model(ckpt, samples[:2], out, "paper", progress=False, model=model, processor=processor)
    first = json.loads((out / ANSWERS_STAMP_FILE).read_text())
    assert first["model"] == str(ckpt) and first["weights"].startswith("fingerprint:") and sum(c["batch"] for c in calls) == 2
    model_path, kwargs = change(ckpt, out)
    with caplog.at_level(logging.WARNING, logger="stvg_lab.evaluate"):
        report = evaluate_model(model_path, samples, out, "paper", progress=False, model=model, processor=processor, **kwargs)
    assert sum(c["batch"] for c in calls) - 2 == asked
    assert ("asking every sample again" in caplog.text) == (asked == 3 and "resume" not in kwargs)
    assert (f"{ANSWERS_STAMP_FILE}: not a JSON object" in caplog.text) == (change is _stamp_broken)  # names the file
    assert [p.id for p in read_predictions(out / PREDICTIONS_FILE)] == [s.id for s in samples] == [p.id for p in report.predictions]
    assert json.loads((out / ANSWERS_STAMP_FILE).read_text())["model"] == str(model_path)


def test_evaluate_model_trusts_a_name_that_is_not_a_folder(tiny, synth, tmp_path, monkeypatch):
    # a hub id (vLLM, or a label for an in-memory model) cannot be fingerprinted: resume goes by the name
    _, model, processor = tiny
    samples = load_synthetic(synth, "test")
    calls = []
    monkeypatch.setattr(model, "generate", fake_generate(processor, perfect_answers(samples, "paper") * 2, calls))
    for n in (2, 3):
        evaluate_model("org/some-model", samples[:n], tmp_path, "paper", progress=False, model=model, processor=processor)
    assert [c["batch"] for c in calls] == [2, 1]
    assert json.loads((tmp_path / ANSWERS_STAMP_FILE).read_text())["weights"] == "name:org/some-model"


def test_resume_drops_truncated_last_line(tiny, synth, tmp_path, monkeypatch, caplog):
    _, model, processor = tiny
    samples = load_synthetic(synth, "test")
    out = tmp_path / "preds.jsonl"
    answers, calls = perfect_answers(samples, "paper") * 2, []
    monkeypatch.setattr(model, "generate", fake_generate(processor, answers, calls))
    predict(model, processor, samples, batch_size=1, out_path=out, progress=False)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2])  # killed while writing the third
    with caplog.at_level(logging.WARNING, logger="stvg_lab.infer"):
        assert [p.id for p in read_predictions(out)] == [samples[0].id, samples[1].id]
    assert "truncated last line" in caplog.text
    answers[:] = perfect_answers(samples[2:], "paper")
    preds = predict(model, processor, samples, batch_size=1, out_path=out, progress=False)
    assert calls[-1]["batch"] == 1 and len(calls) == 4  # only the lost sample is redone
    assert [p.id for p in read_predictions(out)] == [s.id for s in samples]
    assert all(p.ok for p in preds)


def test_corrupt_middle_line_raises_with_file_and_line(tmp_path):
    out = tmp_path / "preds.jsonl"
    out.write_text('{"id": "a"}\nnot json\n')
    # line 1 lacks fields; a bad line that is not the last is corruption, not a killed write
    with pytest.raises(ValueError, match=r"preds\.jsonl:1: not a prediction record"):
        read_predictions(out)


def test_resume_refuses_another_format(tiny, synth, tmp_path, monkeypatch):
    _, model, processor = tiny
    samples = load_synthetic(synth, "test")[:1]
    out = tmp_path / "preds.jsonl"
    monkeypatch.setattr(model, "generate", fake_generate(processor, perfect_answers(samples, "paper"), []))
    predict(model, processor, samples, "paper", out_path=out, progress=False)
    with pytest.raises(ValueError, match="written with format 'paper', not 'compact'"):
        predict(model, processor, samples, "compact", out_path=out, progress=False)




@pytest.mark.parametrize("fmt", list(FORMATS))
def test_perfect_answer_scores_one(tiny, synth_2fps, tmp_path, monkeypatch, fmt):
    # 2 fps videos: every frame is shown, so answer -> original frames is exact in time;
    # boxes lose only the rounding to integer pixels (targets are >= 16 px)
    path, model, processor = tiny
    samples = load_synthetic(synth_2fps, "test")
    calls = []
    monkeypatch.setattr(model, "generate", fake_generate(processor, perfect_answers(samples, fmt), calls))
    report = evaluate_model(path, samples, tmp_path, fmt, batch_size=2, progress=False, model=model, processor=processor)
    m = report.metrics
    assert m["parse_failure_rate"] == 0.0 and m["consistent_rate"] == 1.0
    assert m["pred"]["m_tIoU"] == 1.0
    # the rewards see the ground truth on the frames the model saw: a perfect answer earns every term
    top = 5.0 if get_format(fmt).think else 4.0  # Eq. 10: 1 + 1 + 1 + (R_spa^t + R_spa^p or R_spa^p) + 0.5 * 0
    assert {k: m["reward"][k] for k in ("format", "consistency", "temporal")} == {"format": 1.0, "consistency": 1.0, "temporal": 1.0}
    assert top - 0.1 < m["reward"]["total"] <= top and all(r["reward"]["total"] > top - 0.2 for r in report.per_sample)
    assert m["pred"]["m_vIoU"] > 0.9 and m["pred"]["vIoU@0.5"] == 1.0
    if get_format(fmt).think:
        assert m["think"] == m["pred"]
    else:
        assert m["think"] is None and "| think |" not in report.markdown()
    # the default budget holds a full answer
    assert all(max(c["lengths"]) <= c["max_new_tokens"] for c in calls)


def test_perfect_answer_at_8fps_loses_only_the_sampling(tiny, synth, tmp_path, monkeypatch):
    # 8 fps: each shown frame stands for 4; a span end may move by up to 2 frames each way
    path, model, processor = tiny
    samples = load_synthetic(synth, "test")
    monkeypatch.setattr(model, "generate", fake_generate(processor, perfect_answers(samples, "paper"), []))
    report = evaluate_model(path, samples, tmp_path, "paper", progress=False, model=model, processor=processor)
    for row, s in zip(report.per_sample, samples):
        gs, ge = s.span_frames
        ps, pe = row["pred_span"]
        # ... except after the last shown frame, which stands for every frame to the end of the clip
        assert abs(ps - gs) <= 2 and (abs(pe - ge) <= 2 or pe == s.num_frames - 1), (row, s.span_frames)
        # boxes are interpolated between shown frames but held beyond the first and last one,
        # which costs up to 2 frames of motion (<= 8 px on a >= 16 px target) at the ends
        assert row["vIoU_pred"] > 0.75 * row["tIoU_pred"], row




@given(st.text(max_size=200))
def test_make_prediction_never_raises_and_round_trips(text):
    sample = _SAMPLE
    p = make_prediction(sample, text, [0, 4, 8, 12], (224, 224), "paper")
    assert (p.error is None) == (p.span is not None)
    if p.error is not None:
        assert p.pred_tube == {} and p.think_tube == {}
    assert Prediction.from_dict(json.loads(json.dumps(p.to_dict()))) == p


@given(st.integers(min_value=0, max_value=10_000))
def test_any_cut_of_the_jsonl_keeps_the_complete_records(cut):
    # a run killed at any byte: complete lines survive, a partial last line is dropped
    text = "".join(json.dumps(p.to_dict()) + "\n" for p in _RECORDS)
    cut = cut % (len(text) + 1)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.jsonl"
        path.write_text(text[:cut])
        got = read_predictions(path)
    complete = text[:cut].count("\n")
    assert [p.id for p in got][:complete] == [p.id for p in _RECORDS][:complete]
    assert complete <= len(got) <= complete + 1  # +1: a whole record that only lost its newline


def _sample():
    from stvg_lab.data.sample import Sample

    return Sample("s0", None, "the red square", 8.0, 16, 224, 224, {f: [10.0, 10.0, 50.0, 60.0] for f in range(4, 9)}, "synthetic")


_SAMPLE = _sample()
_RECORDS = [
    make_prediction(replace(_SAMPLE, id=f"s{i}"), format_answer((1, 2), {1: [1, 2, 30, 40], 2: [2, 2, 31, 40]}), [0, 4, 8, 12], (224, 224))
    for i in range(3)
]


CASES = [
    # (answer, expected pred_tube frames, why)
    ("<time> 1 - 2 </time> <think_bbox> 1. [0,0,10,10], 2. [0,0,10,10] </think_bbox> <pred_bbox> 1. [0,0,10,10], 2. [0,0,10,10] </pred_bbox>",
     (2, 9), "index 1 stands for frames 2..5 (centred on 4), index 2 for 6..9"),
    ("<time> 0 - 3 </time> <think_bbox> 0. [0,0,10,10] </think_bbox> <pred_bbox> 0. [0,0,10,10] </pred_bbox>",
     (0, 15), "span to the last index runs to the video's last frame; one anchor is held"),
    ("<time> 5 - 6 </time> <think_bbox> 5. [0,0,10,10] </think_bbox> <pred_bbox> 5. [0,0,10,10] </pred_bbox>",
     None, "span wholly past the 4 shown frames: parsed, but no tube"),
    ("<time> 1 - 2 </time>", None, "missing tags: parse error, no tube"),
]


@pytest.mark.parametrize("text, frames, why", CASES, ids=[c[2][:40] for c in CASES])
def test_make_prediction_maps_to_original_frames(text, frames, why):
    p = make_prediction(_SAMPLE, text, [0, 4, 8, 12], (224, 224), "paper")
    if frames is None:
        assert p.pred_tube == {}
    else:
        assert (min(p.pred_tube), max(p.pred_tube)) == frames and len(p.pred_tube) == frames[1] - frames[0] + 1


def test_model_to_original_pixels_scales_per_axis():
    # model frame 112x56 for a 224x224 video: x doubles, y quadruples
    text = "<time> 0 - 0 </time> <pred_bbox> 0. [10,10,20,20] </pred_bbox>"
    p = make_prediction(_SAMPLE, text, [0, 4, 8, 12], (112, 56), "no_think")
    assert p.pred_tube[0] == [20.0, 40.0, 40.0, 80.0] and p.think_tube is None


def test_answer_token_budget_orders_formats(tiny):
    tok = tiny[2].tokenizer
    budgets = {f: answer_token_budget(tok, 14, (224, 224), f) for f in FORMATS}
    # the compact formats drop labels and spaces; no_think drops a whole list
    assert budgets["compact_no_think"] < budgets["compact"] < budgets["paper"]
    assert budgets["no_think"] < budgets["paper"]
    assert answer_token_budget(tok, 28, (224, 224), "paper") > budgets["paper"]
    assert answer_token_budget(tok, 1, (224, 224), "compact_no_think") > BUDGET_SLACK_TOKENS
    with pytest.raises(ValueError, match="num_frames"):
        answer_token_budget(tok, 0, (224, 224))




def test_score_predictions_counts_missing_and_groups():
    # two VidSTG-like samples, one predicted perfectly, one with no prediction at all
    a = replace(_SAMPLE, id="a", extras={"qtype": "declarative"})
    b = replace(_SAMPLE, id="b", extras={"qtype": "interrogative"})
    perfect = make_prediction(a, "<time> 1 - 2 </time> <pred_bbox> 1. [10,10,50,60], 2. [10,10,50,60] </pred_bbox>", [0, 4, 8, 12], (224, 224), "no_think")
    report = score_predictions([perfect], [a, b], "no_think")
    m = report.metrics
    assert m["pred"]["n"] == 2 and m["pred"]["n_missing"] == 1 and m["parse_failure_rate"] == 0.5
    assert m["by_group"]["pred"]["declarative"]["m_vIoU"] > 0.5
    assert m["by_group"]["pred"]["interrogative"]["m_vIoU"] == 0.0
    assert report.per_sample[1]["error"] == "no_prediction"
    assert report.per_sample[0]["reward"]["total"] == pytest.approx(4.0) and set(report.per_sample[1]["reward"].values()) == {0.0}
    assert m["reward"]["total"] == pytest.approx(2.0) and m["reward"]["lambda_k"] == 0.5  # the missing answer scores 0
    table = metrics_table(m)
    assert "| pred (declarative) |" in table and "| pred (interrogative) | 0.0 | 0.0 | 0.0 | 0.0 |" in table
    assert ("Mean reward of the answers (Eq. 10, the paper's rewards, λk = 0.5): 2.000 = format 0.500 + consistency 0.500 "
            "+ temporal 0.500 + spatial 0.500 + 0.5 × think 0.000.") in table


def test_the_span_control_keeps_the_models_span_and_swaps_in_the_mean_box():
    # a: the right span with boxes far off the object; b: no answer. The only training sample's box is
    # a's gt box, so the control's mean box is exact: inside the span its vIoU is the span's tIoU
    a, b = replace(_SAMPLE, id="a"), replace(_SAMPLE, id="b")
    off = make_prediction(a, "<time> 1 - 2 </time> <pred_bbox> 1. [150,150,200,200], 2. [150,150,200,200] </pred_bbox>",
                          [0, 4, 8, 12], (224, 224), "no_think")
    m = score_predictions([off], [a, b], "no_think", train_samples=[_SAMPLE]).metrics
    control = m["controls"][OWN_SPAN_CONTROL]
    assert m["pred"]["m_vIoU"] == 0.0 and control["m_tIoU"] == m["pred"]["m_tIoU"] > 0
    assert control["m_vIoU"] == pytest.approx(m["pred"]["m_tIoU"]) and control["n_missing"] == 1  # b scores 0 in both
    assert "| control: pred span + mean box |" in metrics_table(m)
    assert score_predictions([off], [a, b], "no_think").metrics["controls"] == {}  # no train split, no mean box


# _SAMPLE on the frames [0, 4, 8, 12] at 224 px: the ground truth is frames 1-2 of the answer, box [10, 10, 50, 60]
_GT = "[10,10,50,60]"
_FAR = "[150,150,200,200]"


@pytest.mark.parametrize("text, fmt, expected", [
    (f"<time>1-2</time><think_bbox>{_GT}{_GT}</think_bbox><pred_bbox>{_GT}{_GT}</pred_bbox>", "compact",
     dict(format=1, consistency=1, temporal=1, spa_pred=1, spa_think=1, spatial=2, think=0, total=5)),
    # one frame of the three claimed is the target's: tIoU 1/3, and Eq. 7 scores the intersection only
    (f"<time>2-3</time><think_bbox>{_GT}{_GT}</think_bbox><pred_bbox>{_GT}{_GT}</pred_bbox>", "compact",
     dict(format=1, consistency=1, temporal=1 / 3, spa_pred=1, spa_think=1, spatial=2, think=0, total=4 + 1 / 3)),
    # one box for a two-frame span: consistency fails (Eq. 4), and the frame without a box scores the floor
    (f"<time>1-2</time><think_bbox>{_GT}</think_bbox><pred_bbox>{_GT}{_GT}</pred_bbox>", "compact",
     dict(format=1, consistency=0, temporal=1, spa_pred=1, spa_think=-0.5, spatial=0.5, think=1.5, total=3.25)),
    (f"<time>1-2</time><pred_bbox>{_GT}{_GT}</pred_bbox>", "compact_no_think",
     dict(format=1, consistency=1, temporal=1, spa_pred=1, spa_think=0, spatial=1, think=0, total=4)),
    ("<time>1-2</time><pred_bbox>" + _GT, "compact", dict.fromkeys(REWARD_TERMS, 0)),  # does not parse: 0 everywhere
])
def test_answer_rewards_score_an_answer_as_grpo_would(text, fmt, expected):
    p = make_prediction(_SAMPLE, text, [0, 4, 8, 12], (224, 224), fmt)
    assert answer_rewards(p, _SAMPLE) == pytest.approx(expected)


def test_answer_rewards_of_no_answer_and_a_far_first_guess():
    assert answer_rewards(None, _SAMPLE) == dict.fromkeys(REWARD_TERMS, 0.0)
    far = answer_rewards(make_prediction(_SAMPLE, f"<time>1-2</time><think_bbox>{_FAR}{_FAR}</think_bbox><pred_bbox>{_GT}{_GT}</pred_bbox>",
                                         [0, 4, 8, 12], (224, 224), "compact"), _SAMPLE)
    assert far["spa_think"] < 0 < far["think"] == pytest.approx(far["spa_pred"] - far["spa_think"])  # Eq. 9
    assert far["total"] == pytest.approx(3 + far["spatial"] + 0.5 * far["think"])  # Eq. 10, λk = 0.5


def test_eval_frames_modes():
    assert eval_frames_for([_SAMPLE], "all") is None
    # 16 frames at 8 fps, TubeDETR's 5 fps sampler over [0, 15): every 1.6 frames
    assert eval_frames_for([_SAMPLE], "tubedetr") == {"s0": [0, 2, 4, 5, 7, 8, 10, 12, 13]}
    with pytest.raises(ValueError, match="eval_frames"):
        eval_frames_for([_SAMPLE], "5fps")


def test_gt_area_ratio():
    # 40x50 box in a 224x224 frame
    assert gt_area_ratio(_SAMPLE) == pytest.approx(2000 / 224**2)


def test_load_split_and_command(tiny, synth, tmp_path, monkeypatch):
    path, model, processor = tiny
    assert [s.id for s in load_split(synth, "test")] == [s.id for s in load_synthetic(synth, "test")]
    with pytest.raises(FileNotFoundError, match="none of the known layouts"):
        load_split(tmp_path, "test")
    report = evaluate_command(path, synth, "test", tmp_path / "eval", max_samples=2, max_new_tokens=4)
    assert report.metrics["n"] == 2 and report.metrics["baselines"]
    assert (tmp_path / "eval" / METRICS_FILE).is_file()


def test_cli_evaluate_asks_in_the_format_the_checkpoint_was_trained_on(tiny, synth, tmp_path):
    """No --format: the recipe.yaml saved with the weights decides (a compact-trained model asked in the
    paper's format answers nothing parseable); no recipe.yaml: the paper's; --format wins over both."""
    from stvg_lab import cli
    from stvg_lab.train.recipe import load_recipe

    ckpt = tmp_path / "ckpt"
    shutil.copytree(tiny[0], ckpt)
    cases = [  # (recipe.yaml's answer_format or None for none, --format, format asked)
        (None, None, "paper"),
        ("compact", None, "compact"),
        ("compact", "no_think", "no_think"),
    ]
    for saved, flag, expected in cases:
        (ckpt / "recipe.yaml").unlink(missing_ok=True)
        if saved:
            load_recipe("tiny_cpu", answer_format=saved).save(ckpt / "recipe.yaml")
        out = tmp_path / f"eval_{saved}_{flag}"
        argv = ["evaluate", "--model", str(ckpt), "--data", str(synth), "--out", str(out), "--max-samples", "1", "--max-new-tokens", "4",
                "--train-split", "none"] + (["--format", flag] if flag else [])
        assert cli.main(argv) == 0
        assert json.loads((out / METRICS_FILE).read_text())["format"] == expected, (saved, flag)




@pytest.mark.skipif(importlib.util.find_spec("vllm") is None or not torch.cuda.is_available(), reason="needs vLLM and CUDA")
def test_vllm_greedy_matches_hf_greedy(tiny, synth):
    """Same parsed answers from vLLM and HF generate, greedy. STVG_TEST_CHECKPOINT picks a real checkpoint."""
    ckpt = os.environ.get("STVG_TEST_CHECKPOINT") or str(tiny[0])
    samples = load_synthetic(synth, "test")
    model, processor = load_model(ckpt)
    hf = predict(model, processor, samples, batch_size=1, progress=False)
    del model
    torch.cuda.empty_cache()
    vl = predict(ckpt, processor, samples, batch_size=len(samples), backend="vllm", progress=False)
    for a, b in zip(hf, vl):
        assert (a.error, a.span, a.pred, a.think) == (b.error, b.span, b.pred, b.think), (a.text, b.text)
