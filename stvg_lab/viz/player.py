"""The video box player: an ipywidgets view of samples with their gt, think and pred tubes.

:class:`Player` takes :class:`~stvg_lab.viz.draw.PlayerItem` s, built from an evaluation
run's ``predictions.jsonl`` (:func:`items_from_run`) or, without a model, from seeded
jittered copies of the ground truth (:func:`demo_items`, labelled as such everywhere they
are shown). ``Player(items).widget`` is a VBox with:

* a category filter (the synthetic generator's ``small`` / ``short`` / ``occluded`` tags,
  paper §B's failure modes; real data has none, so only "all") and a vIoU range slider
  (on the pred tube, else think; an item without either counts 0, as the metrics score a
  missing prediction), then the sample picker over the items that pass both;
* toggles for the gt / think / pred boxes, ``Play`` linked to the frame ``IntSlider``
  with ``jslink`` (so playback runs in the browser and only the frame index comes back);
* the frame as PNG bytes in an ``Image`` (original frame numbers, see ``draw``'s module
  docstring; decoded frames cached per sample, least recently used dropped);
* a readout: per-frame IoU (think, pred) and the sample's tIoU/vIoU from
  :func:`stvg_lab.metrics.evaluate`.

Displayed in a notebook, a Player offers the widget and, for a saved or headless
notebook where no widget manager runs, a PNG of the current frame in the same output.
:func:`static_view` is the fuller fallback: a strip of frames (:func:`draw.frame_strip`).
"""

from __future__ import annotations

import base64
import html
import json
import logging
import tempfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping, Sequence

import ipywidgets as widgets
import numpy as np

from stvg_lab.analysis.scale import read_per_sample
from stvg_lab.data.sample import Sample
from stvg_lab.geometry import clip_boxes
from stvg_lab.metrics import tube_to_arrays
from stvg_lab.viz.draw import (
    COLOURS,
    DEFAULT_LABELS,
    DISPLAY_FPS,
    DISPLAY_SIDE,
    ROLES,
    TAGS,
    PlayerItem,
    blank_frame,
    display_frame_numbers,
    display_size,
    draw_item_frame,
    encode_png,
    figure_png,
    frame_ious,
    frame_strip,
    load_display_frames,
    score_items,
)

logger = logging.getLogger(__name__)

ALL = "all"
DEMO_SOURCE = "demo: jittered ground truth, not a model's output"
SMALL_N = 12  # clips in the small dataset: seed 0 gives at least one of each tag


# --------------------------------------------------------------------------- item sources


def _jittered_tube(
    sample: Sample, rng: np.random.Generator, noise: float
) -> dict[int, list[float]]:
    """A tube like ``sample.tube`` with its span moved and its boxes offset, by ``noise`` in [0, 1].

    Span ends move by ``N(0, noise * L / 2)`` frames (``L`` the gt length), clipped to the
    video; boxes are the gt's (interpolated, held outside it) shifted by a per-tube offset of
    ``N(0, noise / 2)`` box sizes plus ``N(0, noise / 10)`` per frame, scaled by
    ``exp(N(0, noise / 3))``, clipped to the frame.
    """
    frames, boxes = tube_to_arrays(sample.tube, sample.id, "gt")  # (n,), (n, 4)
    a, b = int(frames[0]), int(frames[-1])
    length = b - a + 1
    s = int(np.clip(a + round(rng.normal(0, noise * length / 2)), 0, sample.num_frames - 1))
    e = int(np.clip(b + round(rng.normal(0, noise * length / 2)), s, sample.num_frames - 1))
    span = np.arange(s, e + 1)
    gt = np.stack([np.interp(span, frames, boxes[:, j]) for j in range(4)], axis=-1)  # (F, 4)
    wh = gt[:, 2:] - gt[:, :2]  # (F, 2)
    centre = (gt[:, :2] + gt[:, 2:]) / 2
    offset = rng.normal(0, noise / 2, size=2) + rng.normal(0, noise / 10, size=(len(span), 2))  # (F, 2) box sizes
    half = wh * float(np.exp(rng.normal(0, noise / 3))) / 2
    centre = centre + offset * wh
    out = clip_boxes(np.concatenate([centre - half, centre + half], axis=-1), sample.width, sample.height)
    return {int(f): [round(float(v), 2) for v in box] for f, box in zip(span, out)}


def demo_items(samples: Sequence[Sample], seed: int = 0, *, think: bool = True) -> list[PlayerItem]:
    """Items whose think/pred tubes are jittered copies of the gt: for demos and tests, not results.

    Each sample draws a quality ``q ~ U(0, 1)`` from its own stream
    (``default_rng([seed, crc32(id)])``, so an item does not depend on the others); pred is
    jittered with noise ``0.7 (1 - q)`` and think with noise ``min(1, 1.3 (1 - q) + 0.15)``: the
    coarse-then-refined pattern of paper Fig. 3, and a spread of vIoU for the filters.
    ``source`` says they are demo predictions.
    """
    items = []
    for s in samples:
        rng = np.random.default_rng([int(seed), zlib.crc32(s.id.encode())])
        q = float(rng.uniform(0, 1))
        think_tube = _jittered_tube(s, rng, min(1.0, 1.3 * (1 - q) + 0.15)) if think else None
        pred_tube = _jittered_tube(s, rng, 0.7 * (1 - q))
        items.append(PlayerItem(s, think=think_tube, pred=pred_tube, source=f"{DEMO_SOURCE} (seed {seed})"))
    return items


def items_from_run(
    run_dir: str | Path,
    samples: Sequence[Sample],
    *,
    eval_frames: Mapping[str, Sequence[int]] | str | None = None,
) -> list[PlayerItem]:
    """One item per sample from an evaluation run's files, in ``samples`` order.

    Reads ``<run_dir>/predictions.jsonl`` (or ``run_dir`` itself if it is that file) with
    :func:`stvg_lab.infer.read_predictions`: ``pred_tube`` and ``think_tube`` are the
    tubes (original frames, pixels); ``text``, ``error``, ``detail`` and ``format`` go to
    ``item.info``. A sample without a record gets an empty pred tube (and think tube, when
    the run's format has one), scored 0 as :func:`stvg_lab.metrics.evaluate` scores a
    missing prediction, and
    ``info["error"] = "no prediction in run"``. If ``per_sample.jsonl`` sits beside it, its
    row (matched on ``id``) goes to ``info["run"]`` as written; the readout's metrics are
    recomputed from the tubes either way. ``eval_frames``: frames by id, or a mode of
    :func:`stvg_lab.evaluate.eval_frames_for` (``"all"``, ``"tubedetr"``); None takes the
    mode recorded in the run's ``metrics.json`` (else ``"all"``), so the player scores as
    the run did.
    """
    from stvg_lab.evaluate import eval_frames_for  # imports torch: only when a run is shown
    from stvg_lab.infer import read_predictions

    path = Path(run_dir)
    pred_path = path if path.is_file() else path / "predictions.jsonl"
    records = {r.id: r for r in read_predictions(pred_path)}
    if eval_frames is None:
        metrics_path = pred_path.parent / "metrics.json"
        eval_frames = json.loads(metrics_path.read_text()).get("eval_frames", "all") if metrics_path.is_file() else "all"
    if isinstance(eval_frames, str):
        eval_frames = eval_frames_for(samples, eval_frames)
    per_path = pred_path.parent / "per_sample.jsonl"
    per = {str(row.get("id")): row for row in read_per_sample(per_path)} if per_path.is_file() else {}
    wanted = {s.id for s in samples}
    extra = sorted(set(records) - wanted)
    if extra:
        logger.info("%s: %d predictions are for ids not among the samples (e.g. %r); ignored", pred_path, len(extra), extra[0])
    # a missing record scores 0 for think too when the run's format has <think_bbox>
    has_think = any(r.think_tube is not None for r in records.values())
    items, missing = [], 0
    for s in samples:
        rec = records.get(s.id)
        ef = None if eval_frames is None else eval_frames[s.id]
        if rec is None:
            missing += 1
            items.append(PlayerItem(s, think={} if has_think else None, pred={}, source=str(pred_path), eval_frames=ef,
                                    info={"error": "no prediction in run"}))
            continue
        info = {"text": rec.text, "error": rec.error, "detail": rec.detail, "format": rec.format}
        if s.id in per:
            info["run"] = per[s.id]
        items.append(PlayerItem(s, think=rec.think_tube, pred=rec.pred_tube, source=str(pred_path), eval_frames=ef, info=info))
    if missing:
        logger.warning("%s: %d of %d samples have no prediction (shown with an empty pred tube)", pred_path, missing, len(samples))
    return items


def load_player_samples(
    data_dir: str | Path | None,
    split: str = "test",
    n: int | None = None,
    *,
    small: bool = False,
    seed: int = 0,
) -> list[Sample]:
    """The first ``n`` samples of a synthetic dataset's ``split``, generating it if missing.

    ``small``: a dataset of ``n or 12`` clips in that split only, in the system temp folder
    (``stvg_lab_player_synth_seed<seed>_n<n>``, reused while it exists; ``data_dir`` is
    ignored): the notebook's and the browser test's fast path. Otherwise ``data_dir`` is a
    dataset from :func:`stvg_lab.data.synth.generate_synthetic`; when it has no
    ``dataset.json`` it is generated with the CLI's defaults (3000/50/100 clips, seed 0).
    """
    from stvg_lab.data.synth import SPLITS, ensure_synthetic, load_synthetic

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if small:
        count = int(n or SMALL_N)
        root = Path(tempfile.gettempdir()) / f"stvg_lab_player_synth_seed{int(seed)}_n{count}"
        counts = {sp: (count if sp == split else 0) for sp in SPLITS}
        ensure_synthetic(root, counts["train"], counts["val"], counts["test"], seed=seed)
    else:
        if data_dir is None:
            raise ValueError("data_dir is None: give a synthetic dataset folder or pass small=True")
        root = ensure_synthetic(data_dir, progress=True)  # the CLI's defaults (3000/50/100 clips, seed 0) when missing
    samples = load_synthetic(root, split)
    return samples if n is None else samples[: int(n)]


# --------------------------------------------------------------------------- filters


def filter_items(
    items: Sequence[PlayerItem],
    scores: Sequence[Mapping[str, Mapping[str, float] | None]],
    category: str = ALL,
    viou_range: tuple[float, float] = (0.0, 1.0),
) -> list[int]:
    """Indices of the items with tag ``category`` (or any, for ``"all"``) and vIoU in ``viou_range``.

    vIoU is the pred tube's, else the think tube's, else 0 (a missing prediction scores 0).
    The range is inclusive at both ends, so ``(0, 1)`` keeps everything.
    """
    if category != ALL and category not in TAGS:
        raise ValueError(f"category must be {ALL!r} or one of {TAGS}, got {category!r}")
    lo, hi = float(viou_range[0]), float(viou_range[1])
    keep = []
    for i, (item, score) in enumerate(zip(items, scores)):
        if category != ALL and category not in item.tags:
            continue
        if lo <= headline_viou(score) <= hi:
            keep.append(i)
    return keep


def headline_viou(score: Mapping[str, Mapping[str, float] | None]) -> float:
    """The vIoU the filters and picker use: pred's, else think's, else 0."""
    for role in ("pred", "think"):
        if score.get(role) is not None:
            return float(score[role]["vIoU"])
    return 0.0


# --------------------------------------------------------------------------- player


def _fmt(x: float | None) -> str:
    return "&ndash;" if x is None else f"{x:.3f}"


class Player:
    """An ipywidgets player over ``items`` (module docstring); ``.widget`` is the VBox to display.

    ``display_fps``/``side``: which original frames are shown and the image's longer side
    (``draw.display_frame_numbers``, ``draw.display_size``); ``labels`` renames roles in the
    legend and toggles (e.g. ``{"think": "TA-STVG"}``); ``cache_size`` samples' decoded
    frames are kept. The widgets are attributes (``category``, ``viou_range``, ``picker``,
    ``toggles[role]``, ``play``, ``slider``, ``image``, ``readout``) so code and tests can
    drive them exactly as a user does.
    """

    def __init__(
        self,
        items: Sequence[PlayerItem],
        *,
        display_fps: float = DISPLAY_FPS,
        side: int = DISPLAY_SIDE,
        labels: Mapping[str, str] | None = None,
        cache_size: int = 8,
    ) -> None:
        self.items = list(items)
        if not self.items:
            raise ValueError("Player needs at least one item")
        self.scores = score_items(self.items)
        self.display_fps = float(display_fps)
        self.side = int(side)
        self.labels = {**DEFAULT_LABELS, **(labels or {})}
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._quiet = False
        self.visible: list[int] = list(range(len(self.items)))
        self.current: int | None = None

        counts = self.category_counts()
        self.category = widgets.Dropdown(
            options=[(f"all ({len(self.items)})", ALL)] + [(f"{t} ({counts[t]})", t) for t in TAGS if counts[t]],
            value=ALL, description="category",
        )
        self.viou_range = widgets.FloatRangeSlider(
            value=(0.0, 1.0), min=0.0, max=1.0, step=0.05, description="vIoU", readout_format=".2f",
            continuous_update=False,
        )
        self.count = widgets.HTML()
        self.picker = widgets.Dropdown(description="sample", layout=widgets.Layout(width="95%"))
        self.toggles = {
            r: widgets.ToggleButton(
                value=True, description=self.labels[r], tooltip=f"show the {self.labels[r]} boxes",
                layout=widgets.Layout(width="auto"),
                style={"text_color": "#%02x%02x%02x" % COLOURS[r], "font_weight": "bold"},
            )
            for r in ROLES
        }
        self.play = widgets.Play(min=0, max=0, step=1, interval=max(20, int(round(1000 / self.display_fps))), description="play")
        self.slider = widgets.IntSlider(min=0, max=0, description="frame", continuous_update=True)
        self._link = widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.title = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.readout = widgets.HTML()
        self.widget = widgets.VBox([
            widgets.HBox([self.category, self.viou_range, self.count]),
            self.picker,
            self.title,
            widgets.HBox([*self.toggles.values(), self.play, self.slider]),
            self.image,
            self.readout,
        ])

        self.category.observe(self._on_filter, names="value")
        self.viou_range.observe(self._on_filter, names="value")
        self.picker.observe(self._on_pick, names="value")
        self.slider.observe(self._on_frame, names="value")
        for t in self.toggles.values():
            t.observe(self._on_frame, names="value")
        self._on_filter()

    # ----------------------------------------------------------------- state

    def category_counts(self) -> dict[str, int]:
        """``{tag: number of items with it}`` for each of ``draw.TAGS``."""
        return {t: sum(t in it.tags for it in self.items) for t in TAGS}

    @property
    def visible_ids(self) -> list[str]:
        """Ids of the items that pass the filters, in item order (the picker's options)."""
        return [self.items[i].id for i in self.visible]

    @property
    def item(self) -> PlayerItem | None:
        """The item shown, or None when no item passes the filters."""
        return None if self.current is None else self.items[self.current]

    @property
    def frame_numbers(self) -> np.ndarray:
        """Original frame numbers of the current item's displayed frames ``(F,)``."""
        return self._frames(self.items[self.current])[0] if self.current is not None else np.zeros(0, dtype=np.int64)

    def select(self, key: int | str) -> None:
        """Show item ``key`` (its index in ``items`` or its id); it must pass the filters."""
        idx = key if isinstance(key, int) else next((i for i, it in enumerate(self.items) if it.id == key), None)
        if idx is None or idx not in self.visible:
            raise ValueError(f"item {key!r} is not among the filtered items {self.visible_ids[:5]}...; widen the filters")
        self.picker.value = idx

    def _frames(self, item: PlayerItem) -> tuple[np.ndarray, np.ndarray]:
        """``(frame_numbers (F,), frames (F, h, w, 3))`` of ``item``, decoded once and cached."""
        hit = self._cache.get(item.id)
        if hit is not None:
            self._cache.move_to_end(item.id)
            return hit
        numbers = display_frame_numbers(item.sample, self.display_fps)
        frames = load_display_frames(item.sample, numbers, display_size(item.sample.width, item.sample.height, self.side))
        self._cache[item.id] = (numbers, frames)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return numbers, frames

    # ----------------------------------------------------------------- rendering

    def shown_roles(self) -> list[str]:
        """The roles whose toggle is on."""
        return [r for r in ROLES if self.toggles[r].value]

    def frame_png(self, index: int | None = None) -> bytes:
        """PNG of the current item's displayed frame ``index`` (default: the slider's) with the shown boxes."""
        if self.current is None:
            return encode_png(blank_frame(display_size(4, 3, self.side), "no sample matches the filters"))
        item = self.items[self.current]
        numbers, frames = self._frames(item)
        k = self.slider.value if index is None else int(index)
        return encode_png(draw_item_frame(item, frames[k], int(numbers[k]), self.shown_roles(), labels=self.labels))

    def readout_html(self, index: int | None = None) -> str:
        """The readout for displayed frame ``index``: per-frame IoU, then the sample's tIoU/vIoU."""
        if self.current is None:
            return "<i>no sample matches the filters: widen the category or the vIoU range</i>"
        item, score = self.items[self.current], self.scores[self.current]
        numbers = self._frames(item)[0]
        k = self.slider.value if index is None else int(index)
        f = int(numbers[k])
        ious = frame_ious(item, f)
        roles = [r for r in ("think", "pred") if item.tube(r) is not None]
        lines = [
            f"<b>frame {k + 1}/{len(numbers)}</b> (original #{f}, t={f / item.sample.fps:.2f} s) &middot; IoU "
            + (" &middot; ".join(f"{self.labels[r]} {_fmt(ious[r])}" for r in roles) or "&ndash;"),
        ]
        if roles:
            lines.append(
                "sample: tIoU " + " &middot; ".join(f"{self.labels[r]} {_fmt(score[r]['tIoU'])}" for r in roles)
                + " | vIoU " + " &middot; ".join(f"{self.labels[r]} {_fmt(score[r]['vIoU'])}" for r in roles)
            )
        a, b = item.sample.span_frames
        lines.append(f"gt frames {a}&ndash;{b} | tags: {', '.join(item.tags) or 'none'}")
        if item.info.get("error"):
            lines.append(f"<span style='color:#b00'>answer error: {html.escape(str(item.info['error']))}"
                         f" {html.escape(str(item.info.get('detail') or ''))}</span>")
        return "<br>".join(lines)

    def _title_html(self) -> str:
        if self.current is None:
            return ""
        item = self.items[self.current]
        src = f" <span style='color:#777'>[{html.escape(item.source)}]</span>" if item.source else ""
        return f"<b>{html.escape(item.id)}</b>: &ldquo;{html.escape(item.sample.query)}&rdquo;{src}"

    def _render(self) -> None:
        self.image.value = self.frame_png()
        self.readout.value = self.readout_html()

    # ----------------------------------------------------------------- callbacks

    def _option_label(self, i: int) -> str:
        item, v = self.items[i], headline_viou(self.scores[i])
        tags = f" [{', '.join(item.tags)}]" if item.tags else ""
        return f"{item.id} (vIoU {v:.2f}){tags}: {item.sample.query[:60]}"

    def _on_filter(self, _change: Any = None) -> None:
        self.visible = filter_items(self.items, self.scores, self.category.value, tuple(self.viou_range.value))
        self.count.value = f"{len(self.visible)} of {len(self.items)} samples"
        keep = self.current if self.current in self.visible else (self.visible[0] if self.visible else None)
        self._quiet = True
        try:
            self.picker.options = [(self._option_label(i), i) for i in self.visible]
            self.picker.value = keep
        finally:
            self._quiet = False
        self._show(keep)

    def _on_pick(self, change: Any) -> None:
        if not self._quiet:
            self._show(change["new"])

    def _show(self, idx: int | None) -> None:
        changed = idx != self.current
        self.current = idx
        self.title.value = self._title_html()
        self._quiet = True
        try:
            if idx is not None and changed:
                numbers = self._frames(self.items[idx])[0]
                first = int(np.searchsorted(numbers, self.items[idx].sample.span_frames[0]))
                self.slider.value = self.play.value = 0  # before max shrinks, so nothing clamps mid-update
                self.slider.max = self.play.max = len(numbers) - 1
                # open on the target's first frame; Play too, or jslink resets the slider to Play's value
                self.slider.value = self.play.value = min(first, len(numbers) - 1)
                w, h = display_size(self.items[idx].sample.width, self.items[idx].sample.height, self.side)
                self.image.layout.width, self.image.layout.height = f"{w}px", f"{h}px"  # native size, no stretching
            for role, t in self.toggles.items():
                t.disabled = idx is None or self.items[idx].tube(role) is None
        finally:
            self._quiet = False
        self._render()

    def _on_frame(self, _change: Any = None) -> None:
        if not self._quiet:
            self._render()

    # ----------------------------------------------------------------- summaries and display

    def summary(self) -> dict[str, Any]:
        """JSON-able numbers a notebook records: counts, tag counts, filtered counts, mean scores."""
        def mean(role: str, key: str) -> float | None:
            vals = [s[role][key] for s in self.scores if s[role] is not None]
            return float(np.mean(vals)) if vals else None

        return {
            "n_items": len(self.items),
            "n_visible": len(self.visible),
            "category": self.category.value,
            "viou_range": [float(v) for v in self.viou_range.value],
            "tag_counts": self.category_counts(),
            "filtered_counts": {c: len(filter_items(self.items, self.scores, c)) for c in (ALL, *TAGS)},
            "mean": {f"{r}_{k}": mean(r, k) for r in ("think", "pred") for k in ("tIoU", "vIoU")},
            "current": None if self.item is None else self.item.id,
            "sources": sorted({it.source for it in self.items}),
        }

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # The widget view where a widget manager runs (JupyterLab, voila rank it first); the
        # current frame as PNG for a saved or headless notebook.
        data = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        data["image/png"] = base64.b64encode(self.frame_png()).decode("ascii")
        return data


def static_view(item: PlayerItem, n: int = 8, **strip_kwargs: Any):
    """The player's static fallback: ``IPython.display.Image`` of :func:`draw.frame_strip` (``.data`` is PNG)."""
    from IPython.display import Image

    return Image(data=figure_png(frame_strip(item, n, **strip_kwargs)), format="png")
