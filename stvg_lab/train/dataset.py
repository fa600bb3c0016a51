"""Training datasets for TRL's trainers: samples -> chat rows, with the video frames attached outside Arrow.

Both builders store only text and numbers in Arrow (``id``, the frameless chat messages, the
reward columns) and attach each sample's decoded frames on access with
``datasets.Dataset.with_transform``, from a :class:`ClipCache`. So frames are decoded once, never
serialised, and Arrow never adds ``"video": None`` keys to blocks the template then misreads
(``docs/trl_video_notes.md``). Prompts come from ``stvg_lab.task`` (the one place a sample
becomes model text); targets and reward columns from ``stvg_lab.video``'s ground-truth mapping.
Building a dataset decodes nothing: prompt, span and boxes need only the clip's layout (sampled
frame numbers and model frame size), which :func:`clip_layout` computes from the annotation.

Trainer requirements, both checked in ``tests/test_sft.py``:

* SFT (stock ``trl.SFTTrainer``): a ``messages`` column and an empty ``images`` column select
  TRL's vision collator, which processes each batch on the fly; ``assistant_only_loss=True``
  trains the answer and its ``<|im_end|>\\n`` only. ``remove_unused_columns=False`` is needed
  because the stored columns are not the ones the transform returns.
* GRPO (``stvg_lab.train.grpo_video.VideoGRPOTrainer``): TRL 1.16's ``GRPOTrainer`` accepts a
  ``datasets.Dataset`` with a transform as it is: its sampler indexes the dataset, so every row
  goes through the transform, and ``GRPOConfig.remove_unused_columns`` defaults to False. Every
  column except ``prompt`` reaches the reward functions as a keyword argument (``gt_span``,
  ``gt_tube``, ``frame_size``, ``answer_format``; ``id`` is ignored by them).

The SFT ``<think_bbox>`` target (the paper does not say what it is during SFT), the
``think_target`` recipe field:

* ``"grid"`` (default): each ground-truth box, rounded as the answer writes it, snapped *outward*
  to the 28-pixel grid of Qwen2.5-VL's merged vision tokens (patch 14 × spatial merge 2; model
  frames are multiples of 28, so the grid is exactly the token cells). The think list then says
  "which video tokens hold the object" and ``<pred_bbox>`` refines that to the pixel, the
  coarse-to-fine reading of §3.1. The think box always contains the pred box and is never better
  than it, so after SFT ``R_spa^t < R_spa^p`` and the think reward (Eq. 9) already pays for the
  refinement the model has learned; with ``"same"`` it is 0 until GRPO separates the two lists.
  A box thinner than one cell (or lying on a grid line) still gets at least one cell per axis.
* ``"same"``: the think list repeats the ground truth.
* No think list at all is Table 5's ablation: ``answer_format: no_think`` (or
  ``compact_no_think``); ``think_target`` is then ignored.

File layouts :func:`load_samples` reads under ``recipe.data``: those of ``data/README.md``, in
one place, :mod:`stvg_lab.data.layout` (shared with ``stvg-lab evaluate``). Real datasets are
placed by hand; nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from stvg_lab.answer import AnswerFormat, format_answer, format_box, get_format
from stvg_lab.data.layout import load_split
from stvg_lab.data.sample import Sample
from stvg_lab.task import prompt_text, video_messages
from stvg_lab.video import PATCH_FACTOR, Clip, load_clip, model_frame_size, reward_columns, sample_frame_indices, tube_to_model

if TYPE_CHECKING:
    from datasets import Dataset

    from stvg_lab.train.recipe import Recipe

logger = logging.getLogger(__name__)


def clip_layout(sample: Sample, fps: float = 2.0, max_side: int = 336) -> Clip:
    """The :class:`~stvg_lab.video.Clip` of ``sample`` without decoding: ``frames`` is empty ``(0, h, w, 3)``.

    ``frame_numbers``, ``size`` and the rest are exactly what ``load_clip`` returns (the same
    ``sample_frame_indices`` and ``model_frame_size``), so prompts and targets built from the
    layout match the frames decoded later.
    """
    frame_numbers = sample_frame_indices(sample.num_frames, sample.fps, fps)
    w, h = model_frame_size(sample.width, sample.height, max_side)
    return Clip(
        sample_id=sample.id,
        frames=np.zeros((0, h, w, 3), dtype=np.uint8),
        frame_numbers=frame_numbers,
        timestamps=frame_numbers / float(sample.fps),
        size=(w, h),
        fps=float(fps),
        video_fps=float(sample.fps),
        num_frames=int(sample.num_frames),
    )


class ClipCache:
    """Decoded clips (``stvg_lab.video.load_clip`` at the recipe's fps and max side), kept in memory.

    Each clip is decoded on first use. ``max_items`` bounds the cache (least recently used
    clips are dropped); None keeps every clip: the 300-clip synthetic training set at 14 × 224 ×
    224 frames holds about 630 MB. With DataLoader workers each worker process has its own copy.
    """

    def __init__(self, fps: float = 2.0, max_side: int = 336, max_items: int | None = None) -> None:
        if max_items is not None and max_items < 1:
            raise ValueError(f"ClipCache: max_items must be at least 1 or None, got {max_items}")
        self.fps = float(fps)
        self.max_side = int(max_side)
        self.max_items = max_items
        self.hits = 0
        self.misses = 0
        self._clips: OrderedDict[tuple[str, str | None], Clip] = OrderedDict()

    @classmethod
    def from_recipe(cls, recipe: "Recipe") -> "ClipCache":
        """A cache with the recipe's ``fps``, ``max_side`` and ``clip_cache_items``."""
        return cls(recipe.fps, recipe.max_side, recipe.clip_cache_items)

    def __len__(self) -> int:
        return len(self._clips)

    def __contains__(self, sample: Sample) -> bool:
        return (sample.id, sample.video) in self._clips

    def layout(self, sample: Sample) -> Clip:
        """:func:`clip_layout` at this cache's fps and max side (decodes nothing)."""
        return clip_layout(sample, self.fps, self.max_side)

    def get(self, sample: Sample) -> Clip:
        """The decoded clip of ``sample`` (decoded now if not cached)."""
        key = (sample.id, sample.video)
        clip = self._clips.get(key)
        if clip is not None:
            self.hits += 1
            self._clips.move_to_end(key)
            return clip
        self.misses += 1
        clip = load_clip(sample, self.fps, self.max_side)
        self._clips[key] = clip
        if self.max_items is not None and len(self._clips) > self.max_items:
            self._clips.popitem(last=False)
        return clip

    def warm(self, samples: Iterable[Sample], progress: bool = True) -> "ClipCache":
        """Decode every sample now (a progress bar with ``progress``); returns self."""
        from tqdm.auto import tqdm

        samples = list(samples)
        for s in tqdm(samples, desc="decoding clips", disable=not progress or len(samples) < 2, leave=False):
            self.get(s)
        return self


def snap_box_to_grid(box: Sequence[float], size: tuple[int, int], cell: int = PATCH_FACTOR) -> list[int]:
    """``box`` ``[x1, y1, x2, y2]`` rounded as the answer writes it, then snapped outward to a ``cell`` grid.

    ``x1, y1`` go down and ``x2, y2`` up to multiples of ``cell``, then clip to ``size = (w, h)``.
    A side that would be empty (a degenerate box, or one on a grid line) gets one cell, to the
    right/below unless that leaves the frame.
    """
    w, h = int(size[0]), int(size[1])
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)  # the integers format_answer writes
    out = []
    for lo, hi, limit in ((x1, x2, w), (y1, y2, h)):
        lo_s = max(0, (lo // cell) * cell)
        hi_s = min(limit, -(-hi // cell) * cell)
        if hi_s <= lo_s:
            if lo_s + cell <= limit:
                hi_s = lo_s + cell
            else:
                hi_s, lo_s = limit, max(0, limit - cell)
        out.append((lo_s, hi_s))
    (x1s, x2s), (y1s, y2s) = out
    return [x1s, y1s, x2s, y2s]


def think_boxes(
    boxes: Mapping[int, Sequence[float]], size: tuple[int, int], think_target: str = "grid"
) -> dict[int, list[float]]:
    """The SFT ``<think_bbox>`` list for ground-truth ``boxes`` (module docstring: ``grid`` or ``same``)."""
    if think_target == "same":
        return {int(k): [float(v) for v in b] for k, b in boxes.items()}
    if think_target == "grid":
        return {int(k): [float(v) for v in snap_box_to_grid(b, size)] for k, b in boxes.items()}
    raise ValueError(f"think_target must be 'grid' or 'same', got {think_target!r}")


def sft_target(sample: Sample, clip: Clip, fmt: "str | AnswerFormat | None" = "paper", think_target: str = "grid") -> str:
    """The SFT target answer of ``sample`` as the model should write it for ``clip`` (Eq. 1 output).

    Span and ``<pred_bbox>`` are the ground truth on the model's grid
    (``stvg_lab.video.tube_to_model``); ``<think_bbox>`` follows ``think_target``; serialised by
    ``stvg_lab.answer.format_answer`` (coordinates rounded to integers).
    """
    fmt = get_format(fmt)
    span, boxes = tube_to_model(sample, clip.frame_numbers, clip.size)
    think = think_boxes(boxes, clip.size, think_target) if fmt.think else None
    return format_answer(span, boxes, think, fmt)


def _frame_in_span(sample: Sample, clip: Clip, rng: np.random.Generator) -> tuple[int, list[float]]:
    """A random kept frame ``k`` of the ground-truth span and the object's box there (model pixels)."""
    span, boxes = tube_to_model(sample, clip.frame_numbers, clip.size)
    k = int(rng.integers(span[0], span[1] + 1))
    return k, boxes[k]


def frame_box_row(sample: Sample, clip: Clip, rng: np.random.Generator) -> tuple[str, str]:
    """An auxiliary SFT ``(prompt, answer)``: the object's box in one random kept frame of its span.

    Not in the paper (recipe ``aux_frame_boxes``, off by default). In the full answer only the span
    and the first box say what the sentence does not (the rest follows from the named motion), so
    SFT can lower most of its loss without the pixels; here every answer token depends on them.
    ``k`` counts the clip's kept frames from 0, as ``<time>`` does.
    """
    k, box = _frame_in_span(sample, clip, rng)
    prompt = f"{sample.query}\nGive only its box in frame {k} of 0-{len(clip.frame_numbers) - 1} as [x1,y1,x2,y2]."
    return prompt, format_box(box)


def frame_cell_row(sample: Sample, clip: Clip, rng: np.random.Generator) -> tuple[str, str]:
    """An auxiliary SFT ``(prompt, answer)``: which token-grid cell holds the object's centre in one kept frame.

    Not in the paper (recipe ``aux_frame_cells``, off by default). The coarse twin of
    :func:`frame_box_row`: the answer ``"rc"`` (row, column of the 28-px cell, each one digit on
    a grid of up to 10 x 10) is what ``bench/position_probe.py`` teaches on its own scenes and
    asks of benchmark clips (``--data``), so a stand-in that reads position there keeps being
    asked to during grounding SFT. ``k`` counts the clip's kept frames from 0, as ``<time>`` does.
    """
    k, (rows, cols), (row, col) = _cell_in_span(sample, clip, rng, "frame_cell_row")
    prompt = f"{sample.query}\nIn which cell of the {rows}x{cols} grid is it in frame {k} of 0-{len(clip.frame_numbers) - 1}?"
    return prompt, f"{row}{col}"


def frame_attribute_row(sample: Sample, clip: Clip, rng: np.random.Generator) -> tuple[str, str]:
    """An auxiliary SFT ``(prompt, answer)``: the colour and shape of the object in one cell of one kept frame, without the sentence.

    Not in the paper (recipe ``aux_frame_attributes``, off by default; synthetic samples only, whose
    ``extras["attributes"]`` name the object). The reverse of :func:`frame_cell_row`: the cell is given
    and the words are asked, and the prompt leaves the sentence out so they cannot be copied from it.
    Why: grounding SFT pays for where an object is, its size and motion, never its colour or shape, and
    the stand-in's video tokens lose them (a linear readout of colour from the object's token falls from
    0.77 in a fresh stand-in to 0.52 in the shipped SFT; bench/LEARNING.md round 16), so no sentence can
    pick an object by those words. Answer: ``"red circle"``.
    """
    attributes = sample.extras.get("attributes")
    if not isinstance(attributes, Mapping) or not {"colour", "shape"} <= set(attributes):
        raise ValueError(f"frame_attribute_row: sample {sample.id!r} has no extras['attributes'] with colour and shape; "
                         "only synthetic samples (stvg_lab.data.synth.load_synthetic) name them")
    k, (rows, cols), (row, col) = _cell_in_span(sample, clip, rng, "frame_attribute_row")
    prompt = f"What colour and shape is the object in cell {row}{col} of the {rows}x{cols} grid in frame {k} of 0-{len(clip.frame_numbers) - 1}?"
    return prompt, f"{attributes['colour']} {attributes['shape']}"


def _cell_in_span(sample: Sample, clip: Clip, rng: np.random.Generator, caller: str) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """A random kept frame ``k`` of the span, the token grid ``(rows, cols)`` and the ``(row, col)`` cell of the object's centre."""
    rows, cols = clip.size[1] // PATCH_FACTOR, clip.size[0] // PATCH_FACTOR
    if max(rows, cols) > 10:
        raise ValueError(f"{caller}: {sample.id} has a {rows}x{cols} token grid; one-digit cells need at most 10x10")
    k, (x1, y1, x2, y2) = _frame_in_span(sample, clip, rng)
    return k, (rows, cols), (min(int((y1 + y2) / 2 // PATCH_FACTOR), rows - 1), min(int((x1 + x2) / 2 // PATCH_FACTOR), cols - 1))


def _index(samples: Sequence[Sample]) -> dict[str, Sample]:
    by_id: dict[str, Sample] = {}
    for s in samples:
        if s.id in by_id:
            raise ValueError(f"two samples share the id {s.id!r}; a training dataset needs unique ids")
        by_id[s.id] = s
    return by_id


def _with_frames(messages: Sequence[Mapping[str, Any]], frames: np.ndarray) -> list[dict[str, Any]]:
    """Messages read back from Arrow with the frames put into the video block and Arrow's None keys removed."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            blocks = []
            for block in content:
                block = {k: v for k, v in block.items() if v is not None}
                if block.get("type") == "video":
                    block["video"] = frames
                blocks.append(block)
            content = blocks
        out.append({k: v for k, v in m.items() if k != "content"} | {"content": content})
    return out


def _check_clip(clip: Clip, layout_clip: Clip) -> None:
    if len(clip.frames) != len(layout_clip.frame_numbers) or tuple(clip.size) != tuple(layout_clip.size):
        raise RuntimeError(
            f"sample {clip.sample_id!r}: decoded {len(clip.frames)} frames of {clip.size}, but the prompt was "
            f"built for {len(layout_clip.frame_numbers)} frames of {layout_clip.size}; was the cache made with "
            "another fps or max_side than the recipe?"
        )


def _check_cache(cache: ClipCache, recipe: "Recipe") -> None:
    if cache.fps != float(recipe.fps) or cache.max_side != int(recipe.max_side):
        raise ValueError(
            f"ClipCache decodes at {cache.fps:g} fps / max side {cache.max_side}, the recipe asks for "
            f"{recipe.fps:g} fps / {recipe.max_side}; build it with ClipCache.from_recipe(recipe)"
        )


def build_sft_dataset(samples: Sequence[Sample], recipe: "Recipe", cache: ClipCache | None = None) -> "Dataset":
    """A ``datasets.Dataset`` for ``trl.SFTTrainer``: ``id``, ``messages`` (user video + prompt, assistant target), ``images`` = [].

    The stored ``messages`` have a frameless video block; on access the transform puts the
    cached clip's ``(T, h, w, 3)`` uint8 frames into it. Targets use ``recipe.answer_format``
    and ``recipe.think_target`` (:func:`sft_target`).
    """
    from datasets import Dataset

    cache = cache if cache is not None else ClipCache.from_recipe(recipe)
    _check_cache(cache, recipe)
    by_id = _index(samples)
    fmt = get_format(recipe.answer_format)
    rows: dict[str, list] = {"id": [], "messages": [], "images": []}
    rng = np.random.default_rng(recipe.seed)
    # auxiliary rows on the same clip (off in the paper): (id suffix, row maker)
    aux = [(suffix, fn) for on, suffix, fn in ((recipe.aux_frame_boxes, "frame_box", frame_box_row),
                                               (recipe.aux_frame_cells, "frame_cell", frame_cell_row),
                                               (recipe.aux_frame_attributes, "frame_attributes", frame_attribute_row)) if on]
    for aux_id, owner in ((f"{s.id}/{suffix}", s.id) for s in samples for suffix, _ in aux):
        if aux_id in by_id:
            raise ValueError(f"sample id {aux_id!r} collides with the auxiliary row of {owner!r}")
    for s in samples:
        layout = cache.layout(s)
        prompt = prompt_text(s, layout, fmt)
        answer = sft_target(s, layout, fmt, recipe.think_target)
        rows["id"].append(s.id)
        rows["messages"].append(video_messages(None, prompt, answer, recipe.system_prompt))
        rows["images"].append([])
        for suffix, make_row in aux:
            rows["id"].append(f"{s.id}/{suffix}")
            rows["messages"].append(video_messages(None, *make_row(s, layout, rng), recipe.system_prompt))
            rows["images"].append([])
    by_row = {**by_id, **{f"{s.id}/{suffix}": s for s in samples for suffix, _ in aux}}

    def attach(batch: dict[str, list]) -> dict[str, list]:
        clips = [cache.get(by_row[i]) for i in batch["id"]]
        for i, clip in zip(batch["id"], clips):
            _check_clip(clip, cache.layout(by_row[i]))
        return {
            "id": batch["id"],
            "messages": [_with_frames(m, c.frames) for m, c in zip(batch["messages"], clips)],
            "images": [[] for _ in batch["id"]],
        }

    return Dataset.from_dict(rows).with_transform(attach)


def build_grpo_dataset(samples: Sequence[Sample], recipe: "Recipe", cache: ClipCache | None = None) -> "Dataset":
    """A ``datasets.Dataset`` for GRPO: ``id``, ``prompt`` (messages without the answer), reward columns, ``answer_format``.

    Reward columns (``stvg_lab.video.reward_columns``, model grid): ``gt_span`` ``[s, e]``,
    ``gt_tube`` rows ``[k, x1, y1, x2, y2]``, ``frame_size`` ``[w, h]``. The transform puts the
    cached frames into the prompt's video block on access.
    """
    from datasets import Dataset

    cache = cache if cache is not None else ClipCache.from_recipe(recipe)
    _check_cache(cache, recipe)
    by_id = _index(samples)
    fmt = get_format(recipe.answer_format)
    rows: dict[str, list] = {"id": [], "prompt": [], "gt_span": [], "gt_tube": [], "frame_size": [], "answer_format": []}
    for s in samples:
        layout = cache.layout(s)
        cols = reward_columns(s, layout.frame_numbers, layout.size)
        rows["id"].append(s.id)
        rows["prompt"].append(video_messages(None, prompt_text(s, layout, fmt), None, recipe.system_prompt))
        rows["gt_span"].append(cols["gt_span"])
        rows["gt_tube"].append([[float(v) for v in row] for row in cols["gt_tube"]])
        rows["frame_size"].append(cols["frame_size"])
        rows["answer_format"].append(fmt.name)

    def attach(batch: dict[str, list]) -> dict[str, list]:
        out = dict(batch)
        clips = [cache.get(by_id[i]) for i in batch["id"]]
        for i, clip in zip(batch["id"], clips):
            _check_clip(clip, cache.layout(by_id[i]))
        out["prompt"] = [_with_frames(p, c.frames) for p, c in zip(batch["prompt"], clips)]
        return out

    return Dataset.from_dict(rows).with_transform(attach)




def load_samples(recipe: "Recipe", split: str) -> list[Sample]:
    """The samples of ``split`` of ``recipe.dataset`` under ``recipe.data`` (layouts: module docstring).

    For ``recipe.train_split`` the first ``recipe.max_train_samples`` are kept when that is set.
    A missing synthetic dataset raises FileNotFoundError naming ``stvg-lab data synth``; it is
    never generated here (a training run should not silently pick its data).
    """
    samples = load_split(recipe.data, split, recipe.dataset)
    if split == recipe.train_split and recipe.max_train_samples is not None:
        samples = samples[: recipe.max_train_samples]
    logger.info("loaded %d %s samples (%s split) from %s", len(samples), recipe.dataset, split, recipe.data)
    return samples
