"""stvg_lab.viz: drawing (pixels where boxes go), item scores, the player's Python side, the notebook.

The browser side is tests/test_browser.py. The player tests drive the widgets exactly as a
user does (set ``slider.value``, a toggle, a filter) and read what the frontend would get
(``image.value`` bytes, ``readout.value``, ``picker.options``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from stvg_lab.data.sample import Sample
from stvg_lab.data.synth import PRESETS, generate_synthetic, load_synthetic
from stvg_lab.geometry import box_iou
from stvg_lab.metrics import evaluate
from stvg_lab.viz import (
    COLOURS,
    DEMO_SOURCE,
    Player,
    PlayerItem,
    demo_items,
    display_size,
    draw_frame,
    filter_items,
    frame_ious,
    frame_strip,
    headline_viou,
    items_from_run,
    load_player_samples,
    score_items,
    static_view,
)
from stvg_lab.viz.draw import strip_frame_numbers

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "06_video_player.ipynb"
GREEN, BLUE, RED = COLOURS["gt"], COLOURS["think"], COLOURS["pred"]


@pytest.fixture(scope="session")
def synth_samples(tmp_path_factory) -> list[Sample]:
    # 12 test clips of the "hard" preset (224 px, 56 frames, occluders) at seed 0 hold 2 small, 2 short and
    # 1 occluded target (checked below): every tag filter has something to show
    root = generate_synthetic(tmp_path_factory.mktemp("viz") / "synth", 0, 0, 12, seed=0, config=PRESETS["hard"],
                              progress=False, workers=1)
    return load_synthetic(root, "test")


@pytest.fixture
def player(synth_samples) -> Player:
    return Player(demo_items(synth_samples, seed=0))


def _sample(tube: dict[int, list[float]], fps: float = 8.0, num_frames: int = 56, size=(120, 100), **extras) -> Sample:
    return Sample(id="s", video=None, query="q", fps=fps, num_frames=num_frames, width=size[0], height=size[1],
                  tube=tube, dataset="synthetic", extras=extras)


# --------------------------------------------------------------------------- draw_frame

BLACK = np.zeros((100, 120, 3), dtype=np.uint8)

# (boxes by role, probe (y, x), expected colour): outlines only, drawn gt < think < pred
DRAW_CASES = [
    ({"gt": [10, 20, 50, 60]}, (40, 10), GREEN),  # left edge of gt
    ({"gt": [10, 20, 50, 60]}, (40, 30), (0, 0, 0)),  # inside the box: an outline, not a fill
    ({"think": [30, 30, 90, 70]}, (70, 60), BLUE),  # bottom edge of think
    ({"pred": [5, 5, 110, 90]}, (50, 110), RED),  # right edge of pred
    ({"pred": [-20, 40, 60, 500]}, (60, 0), RED),  # box past the frame: clipped, left edge on column 0
    ({"gt": [10, 20, 50, 60], "pred": [10, 20, 50, 60]}, (40, 10), RED),  # same box: pred on top of gt
    ({"gt": [10, 20, 50, 60], "think": [10, 20, 50, 60]}, (20, 30), BLUE),  # think on top of gt (top edge)
]


@pytest.mark.parametrize("boxes, probe, colour", DRAW_CASES)
def test_draw_frame_colours_at_box_edges(boxes, probe, colour):
    out = draw_frame(BLACK, **boxes, legend=False)
    assert tuple(out[probe]) == colour
    assert out.shape == BLACK.shape and out.dtype == np.uint8
    assert not BLACK.any()  # the input is not drawn on


def test_draw_frame_legend_and_time():
    # text 10 px, padding 2 px on a 100 px frame: the first swatch covers rows/cols 2..11
    assert tuple(draw_frame(BLACK, gt=[50, 50, 60, 60])[5, 5]) == GREEN  # legend=True lists the given roles
    assert tuple(draw_frame(BLACK, legend=("think", "pred"))[5, 5]) == BLUE  # a listed role needs no box here
    assert np.array_equal(draw_frame(BLACK, legend=False), BLACK)  # nothing asked, nothing drawn
    stamped = draw_frame(BLACK, time_s=1.25, legend=False)
    assert stamped[-14:, :60].any() and not stamped[:50].any()  # the time goes bottom-left, nothing else


@pytest.mark.parametrize(
    "frame, kwargs",
    [
        (BLACK.astype(np.float32), {}),  # float frame: must be uint8
        (BLACK[..., 0], {}),  # grey (H, W): must be (H, W, 3)
        (BLACK, {"legend": ("gt", "truth")}),  # unknown legend role
    ],
)
def test_draw_frame_rejects_bad_input(frame, kwargs):
    with pytest.raises(ValueError):
        draw_frame(frame, **kwargs)


@pytest.mark.parametrize(
    "size, side, expected",
    [
        ((224, 224), 448, (448, 448)),  # synthetic clip: doubled
        ((640, 360), 448, (448, 252)),  # HC-STVG landscape: aspect kept
        ((360, 640), 448, (252, 448)),  # portrait
        ((100, 30), 448, (448, 134)),  # 134.4 -> nearest even
        ((1920, 1080), 448, (448, 252)),  # downscaled
    ],
)
def test_display_size(size, side, expected):
    assert display_size(*size, side) == expected


# --------------------------------------------------------------------------- items and scores

SQUARE = [0.0, 0.0, 10.0, 10.0]


@pytest.mark.parametrize(
    "pred, frame, expected",
    [
        ({1: SQUARE}, 0, 0.0),  # gt box, no pred box: in the union, counts 0
        ({1: SQUARE}, 1, 1.0),  # same box
        ({1: [5.0, 0.0, 15.0, 10.0]}, 1, 50 / 150),  # half shifted: 50 / (100 + 100 - 50)
        ({2: SQUARE}, 2, 0.0),  # pred box, no gt box
        ({1: SQUARE}, 3, None),  # neither has a box
        (None, 1, None),  # no pred tube at all
    ],
)
def test_frame_ious(pred, frame, expected):
    item = PlayerItem(_sample({0: SQUARE, 1: SQUARE}), pred=pred)
    got = frame_ious(item, frame)
    assert got["think"] is None
    assert got["pred"] == (None if expected is None else pytest.approx(expected))


def test_player_item_normalises_string_keys_and_rejects_bad_boxes():
    item = PlayerItem(_sample({0: SQUARE}), pred={"3": [1, 2, 3, 4]})  # as read back from JSON
    assert item.pred == {3: [1.0, 2.0, 3.0, 4.0]}
    with pytest.raises(ValueError, match="frame 0"):
        PlayerItem(_sample({0: SQUARE}), think={0: [1, 2, 3]})


def test_score_items_equals_metrics_evaluate(synth_samples):
    items = demo_items(synth_samples, seed=3)
    scores = score_items(items)
    gts = {it.id: it.sample.tube for it in items}
    for role in ("think", "pred"):
        ref = evaluate({it.id: it.tube(role) for it in items}, gts, per_sample=True)["per_sample"]
        for it, sc in zip(items, scores):
            assert sc[role] == {"tIoU": ref[it.id]["tIoU"], "vIoU": ref[it.id]["vIoU"]}
    with pytest.raises(ValueError, match="more than one item"):
        score_items(items[:1] * 2)


@pytest.mark.parametrize(
    "tube, fps, num_frames, n, expected",
    [
        ({f: SQUARE for f in range(17, 21)}, 8.0, 56, 8, [16, 17, 18, 19, 20, 21]),  # short event: all 6 frames
        ({f: SQUARE for f in range(17, 21)}, 8.0, 56, 3, [16, 18, 21]),  # spread: linspace(16, 21, 3) rounds 18.5 to 18
        ({f: SQUARE for f in range(0, 3)}, 8.0, 56, 8, [0, 1, 2, 3]),  # at the video's start: no frame before 0
        # 30 fps shown at 8 fps (every 3.75 frames): the hull 98..203 widens to 94..206
        ({100: SQUARE, 200: SQUARE}, 30.0, 600, 2, [94, 206]),
    ],
)
def test_strip_frame_numbers(tube, fps, num_frames, n, expected):
    item = PlayerItem(_sample(tube, fps=fps, num_frames=num_frames))
    assert strip_frame_numbers(item, n).tolist() == expected


def test_demo_items_are_seeded_per_sample_and_labelled(synth_samples):
    a = demo_items(synth_samples, seed=0)
    b = demo_items(synth_samples[::-1], seed=0)[::-1]  # another order: same tubes per sample
    c = demo_items(synth_samples, seed=1)
    assert [(x.think, x.pred) for x in a] == [(x.think, x.pred) for x in b]
    assert [x.pred for x in a] != [x.pred for x in c]
    assert all(DEMO_SOURCE in x.source for x in a)
    assert demo_items(synth_samples[:1], think=False)[0].think is None
    for it in a:  # boxes stay inside the frame and the span inside the video
        frames = np.array(sorted(it.pred))
        boxes = np.array([it.pred[f] for f in frames])
        assert 0 <= frames[0] and frames[-1] < it.sample.num_frames and np.all(np.diff(frames) == 1)
        assert boxes.min() >= 0 and boxes[:, [0, 2]].max() <= it.sample.width and boxes[:, [1, 3]].max() <= it.sample.height


def test_filter_items_by_category_and_viou_range(synth_samples):
    items = demo_items(synth_samples, seed=0)
    scores = score_items(items)
    small = [i for i, s in enumerate(synth_samples) if s.extras["small"]]
    assert len(small) == 2  # the fixture's dataset: keeps the filter test meaningful
    assert filter_items(items, scores, "small") == small
    assert filter_items(items, scores) == list(range(len(items)))  # "all" and (0, 1): everything
    viou = [headline_viou(s) for s in scores]
    assert filter_items(items, scores, viou_range=(0.4, 1.0)) == [i for i, v in enumerate(viou) if v >= 0.4]
    assert filter_items(items, scores, "occluded", (1.0, 1.0)) == []  # nothing is perfect
    with pytest.raises(ValueError, match="category"):
        filter_items(items, scores, "tiny")


@pytest.mark.parametrize(
    "score, expected",
    [
        ({"think": {"tIoU": 1, "vIoU": 0.2}, "pred": {"tIoU": 1, "vIoU": 0.7}}, 0.7),  # pred wins
        ({"think": {"tIoU": 1, "vIoU": 0.2}, "pred": None}, 0.2),  # think when there is no pred
        ({"think": None, "pred": None}, 0.0),  # ground truth only: scored as a missing prediction
    ],
)
def test_headline_viou(score, expected):
    assert headline_viou(score) == expected


# --------------------------------------------------------------------------- the player, Python side


def test_slider_changes_image_bytes(player):
    first = bytes(player.image.value)
    assert first.startswith(b"\x89PNG")
    player.slider.value = (player.slider.value + 3) % (player.slider.max + 1)
    assert bytes(player.image.value) != first
    assert bytes(player.image.value) == player.frame_png()


def test_player_opens_on_the_first_gt_frame(player):
    item = player.item
    assert int(player.frame_numbers[player.slider.value]) == item.sample.span_frames[0]
    assert player.play.value == player.slider.value  # or jslink would reset the slider in the browser
    assert player.slider.max == len(player.frame_numbers) - 1 == 55  # every frame of an 8 fps, 56-frame clip


def test_toggles_change_image_bytes(player):
    player.slider.value = int(np.searchsorted(player.frame_numbers, player.item.sample.span_frames[0]))
    full = bytes(player.image.value)
    player.toggles["pred"].value = False
    no_pred = bytes(player.image.value)
    assert no_pred != full
    player.toggles["gt"].value = False
    assert bytes(player.image.value) not in (full, no_pred)
    player.toggles["pred"].value = player.toggles["gt"].value = True
    assert bytes(player.image.value) == full


def test_filters_change_the_sample_list(player, synth_samples):
    small_ids = [s.id for s in synth_samples if s.extras["small"]]
    player.category.value = "small"
    assert player.visible_ids == small_ids
    assert [label_value for _, label_value in player.picker.options] == player.visible
    assert player.item.id == small_ids[0]  # the shown sample moved into the filtered list
    assert player.count.value.startswith("2 of 12")
    player.category.value = "all"
    player.viou_range.value = (0.5, 1.0)
    want = [it.id for it, s in zip(player.items, player.scores) if headline_viou(s) >= 0.5]
    assert 0 < len(want) < 12 and player.visible_ids == want


def test_empty_filter_shows_a_message(player):
    player.viou_range.value = (1.0, 1.0)
    assert player.visible == [] and player.item is None and player.picker.options == ()
    assert "no sample matches" in player.readout.value
    assert bytes(player.image.value).startswith(b"\x89PNG")
    assert all(t.disabled for t in player.toggles.values())
    player.viou_range.value = (0.0, 1.0)
    assert player.item is not None and not player.toggles["pred"].disabled


def test_readout_has_the_metrics_numbers(player):
    player.select(3)
    item = player.item
    ref = evaluate({item.id: item.pred}, {item.id: item.sample.tube}, per_sample=True)["per_sample"][item.id]
    k = player.slider.value
    f = int(player.frame_numbers[k])
    iou = float(box_iou(item.sample.tube[f], item.pred[f])) if f in item.pred else 0.0
    text = player.readout.value
    assert f"tIoU think {score_items([item])[0]['think']['tIoU']:.3f}" in text
    assert f"pred {ref['tIoU']:.3f}" in text and f"pred {ref['vIoU']:.3f}" in text
    assert f"pred {iou:.3f}" in text and f"original #{f}," in text
    assert ", ".join(item.tags) in text if item.tags else "tags: none" in text


def test_select_and_errors(player, synth_samples):
    player.select(synth_samples[5].id)
    assert player.item.id == synth_samples[5].id
    player.category.value = "small"
    with pytest.raises(ValueError, match="filtered"):
        player.select(0)  # not small
    with pytest.raises(ValueError, match="at least one"):
        Player([])


def test_frame_render_is_fast(player):
    # the budget: < ~50 ms per frame at 224 px (448 px shown); generous on shared CPUs
    player.slider.value = 0
    t0 = time.perf_counter()
    for k in range(1, 11):
        player.slider.value = k
    assert (time.perf_counter() - t0) / 10 < 0.1


def test_summary_and_mimebundle(player):
    s = player.summary()
    assert s["n_items"] == 12 and s["tag_counts"] == {"small": 2, "short": 2, "occluded": 1}
    assert s["filtered_counts"] == {"all": 12, "small": 2, "short": 2, "occluded": 1}
    m = s["mean"]
    assert m["pred_vIoU"] == pytest.approx(np.mean([sc["pred"]["vIoU"] for sc in player.scores]))
    json.dumps(s)
    bundle = player._repr_mimebundle_()
    assert {"application/vnd.jupyter.widget-view+json", "image/png", "text/plain"} <= set(bundle)


def test_static_fallback(synth_samples):
    item = demo_items(synth_samples[:1], seed=0)[0]
    fig = frame_strip(item, n=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 4
    assert item.id in fig._suptitle.get_text() and "demo" in fig._suptitle.get_text()
    view = static_view(item, n=4)
    assert view.data.startswith(b"\x89PNG") and len(view.data) > 5_000


def test_items_from_run(tmp_path, synth_samples):
    from stvg_lab.answer import format_answer
    from stvg_lab.evaluate import eval_frames_for, score_predictions, write_report
    from stvg_lab.infer import make_prediction
    from stvg_lab.video import model_frame_size, sample_frame_indices, tube_to_model

    good, broken, absent = synth_samples[:3]
    size = model_frame_size(good.width, good.height)
    fn = sample_frame_indices(good.num_frames, good.fps)
    span, boxes = tube_to_model(good, fn, size)
    records = [
        make_prediction(good, format_answer(span, boxes, fmt="paper"), fn, size, "paper"),
        make_prediction(broken, "<time>3 - 5</time> no boxes", fn, size, "paper"),
    ]
    # the run's own writers: predictions.jsonl, then metrics.json and per_sample.jsonl scored at TubeDETR's frames
    run = tmp_path / "run"
    run.mkdir()
    (run / "predictions.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in records))
    samples = [good, broken, absent]
    report = write_report(score_predictions(records, samples, eval_frames="tubedetr"), run)
    rows = {r["id"]: r for r in map(json.loads, (report / "per_sample.jsonl").read_text().splitlines())}

    items = items_from_run(run, samples)
    assert [it.id for it in items] == [good.id, broken.id, absent.id]
    assert items[0].pred == records[0].pred_tube and items[0].think == records[0].think_tube
    assert items[0].eval_frames == eval_frames_for(samples, "tubedetr")[good.id]  # read from metrics.json
    assert items[0].info["run"] == rows[good.id] and items[0].info["error"] is None
    assert items[1].pred == {} and items[1].info["error"] == records[1].error
    assert items[2].pred == items[2].think == {} and items[2].info["error"] == "no prediction in run"
    player = Player(items)
    for it, score in zip(items, player.scores):  # the player scores exactly as the run did
        row = rows[it.id]
        assert score["pred"] == {"tIoU": row["tIoU_pred"], "vIoU": row["vIoU_pred"]}
        assert score["think"] == {"tIoU": row["tIoU_think"], "vIoU": row["vIoU_think"]}
    assert player.scores[0]["pred"]["vIoU"] > 0.3 and player.scores[2]["pred"]["vIoU"] == 0.0
    player.select(1)
    assert "answer error" in player.readout.value
    all_frames = items_from_run(run / "predictions.jsonl", samples, eval_frames="all")
    assert all_frames[0].eval_frames is None


def test_load_player_samples_errors():
    with pytest.raises(ValueError, match="split"):
        load_player_samples(None, "dev", small=True)
    with pytest.raises(ValueError, match="data_dir"):
        load_player_samples(None)


# --------------------------------------------------------------------------- the notebook


def test_notebook_is_committed_clean():
    nb = json.loads(NOTEBOOK.read_text())  # plain JSON: nbformat's import alone takes seconds
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert sum("parameters" in c["metadata"].get("tags", []) for c in nb["cells"]) == 1
    assert nb["cells"][0]["cell_type"] == "markdown"


@pytest.mark.notebook
def test_notebook_records_player_values(tmp_path):
    import nbformat
    import papermill as pm

    record_path = tmp_path / "record.json"
    out = tmp_path / "out.ipynb"
    pm.execute_notebook(
        str(NOTEBOOK), str(out), parameters={"small": True, "record_path": str(record_path), "seed": 0},
        kernel_name="python3", cwd=str(NOTEBOOK.parent), progress_bar=False,
    )
    rec = json.loads(record_path.read_text())
    samples = load_player_samples(None, "test", small=True)  # the notebook's own (deterministic) dataset
    items = demo_items(samples, seed=0)
    gts = {it.id: it.sample.tube for it in items}
    assert rec["n_items"] == len(items) == 12 and rec["small"] is True
    assert rec["tag_counts"] == {t: sum(bool(s.extras[t]) for s in samples) for t in ("small", "short", "occluded")}
    assert rec["mean"]["pred_vIoU"] == pytest.approx(evaluate({it.id: it.pred for it in items}, gts)["m_vIoU"])
    assert rec["mean"]["think_tIoU"] == pytest.approx(evaluate({it.id: it.think for it in items}, gts)["m_tIoU"])
    scores = score_items(items)
    assert rec["worst"] == items[int(np.argmin([headline_viou(s) for s in scores]))].id
    assert rec["frames_differ"] is True and rec["static_png_bytes"] > 5_000
    assert any("demo" in s for s in rec["sources"])
    bundles = [o.get("data", {}) for c in nbformat.read(out, as_version=4).cells if c.cell_type == "code" for o in c.outputs]
    assert any({"application/vnd.jupyter.widget-view+json", "image/png"} <= set(b) for b in bundles)  # player + fallback
    assert "image/png" in bundles[-1]  # ends with the static strip
