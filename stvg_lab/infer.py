"""From a model to answers: batched generation, the parse (Eq. 2) and the map back to original frames.

:func:`predict` runs one question per sample, asked exactly as training asks it
(``stvg_lab.task.prompt_text`` on ``stvg_lab.video.load_clip``), and returns a
:class:`Prediction` per sample:

* ``text``: the raw completion (special tokens dropped);
* ``error``/``detail``/``span``/``think``/``pred``: :func:`stvg_lab.answer.parse_answer` of it, boxes
  keyed by sampled-frame index in model pixels;
* ``pred_tube``/``think_tube``: the same mapped to original frame numbers and pixels with
  :func:`stvg_lab.video.answer_to_tube` (what :func:`stvg_lab.metrics.evaluate` scores). A
  malformed answer gives an empty tube, which the metrics score 0;
* ``latency_s``, ``generated_tokens``, ``peak_mem_bytes`` (paper Table 9), see below.

Backends (one argument): ``backend="hf"`` calls ``model.generate`` on a model from
:func:`stvg_lab.model.load_model`; ``backend="vllm"`` (GPU, ``pip install -e ".[gpu]"``) hands the
same prompt text and the same frames to ``vllm.LLM.generate``. vLLM places text after a video
with Qwen's rule, which :func:`~stvg_lab.model.load_model` applies to the HF model too, so both
see the same positions and greedy decoding should agree token for token up to bf16 kernel
differences; ``tests/test_infer.py`` compares the parsed results where vLLM is installed.

Length budget (``max_new_tokens=None``): per batch, the token count of the longest valid answer
of the format for the batch's longest clip, :func:`answer_token_budget`: span ``0 - (T-1)``,
every box at the frame's largest coordinates (most digits), plus :data:`BUDGET_SLACK_TOKENS`
for ``<|im_end|>`` and white space. A completion that runs out of budget is marked
``truncated`` and almost always fails to parse (a closing tag is missing).

Measurements, per sample:

* ``latency_s``: wall time of the batch's generate call (prefill, vision tower included, and
  decoding; not video decoding nor preprocessing, which are in ``prep_s``) divided by the
  number of samples in the batch. With ``batch_size=1`` it is the paper's s/sample.
* ``generated_tokens``: new tokens up to and including the first end-of-turn token.
* ``peak_mem_bytes``: on CUDA ``torch.cuda.max_memory_allocated`` during the batch (weights,
  activations and KV cache: what Table 9's GB are); on CPU the peak resident set size of the
  whole process during the batch, polled every 5 ms from ``/proc/self/statm``
  (``mem_measure="cpu_rss_peak"``; it includes the interpreter and everything loaded, so
  compare differences, not absolute values), or where ``/proc`` is missing the lifetime
  ``ru_maxrss`` (``"cpu_maxrss"``). ``tracemalloc`` is not used: torch's CPU allocator bypasses
  Python's, so it would see almost nothing. vLLM preallocates its memory in a separate
  process: ``peak_mem_bytes`` is None there (``"unavailable"``).

Predictions go to ``out_path`` as JSONL, one record per line, appended and flushed (and
fsynced) as each batch finishes; :func:`read_predictions` reads them back. With ``resume=True``
the ids already in the file are skipped; a truncated last line (a killed run) is dropped with
a warning and cut from the file before appending.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from stvg_lab.answer import AnswerFormat, format_answer, get_format, parse_answer
from stvg_lab.data.sample import Sample
from stvg_lab.model import build_model_inputs, generation_kwargs
from stvg_lab.task import prompt_text, video_messages
from stvg_lab.video import Clip, answer_to_tube, load_clip

logger = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm")
BUDGET_SLACK_TOKENS = 8
RSS_POLL_S = 0.005
COORD_DECIMALS = 2  # tubes are rounded at creation so that a record read back equals the one returned


@dataclass
class Prediction:
    """One sample's answer, parsed and mapped back (JSON-able through :meth:`to_dict`).

    Boxes in ``think``/``pred`` are keyed by sampled-frame index, in model pixels
    (``model_size``); ``pred_tube``/``think_tube`` by original frame number, in original
    pixels. ``think`` and ``think_tube`` are None for a format without ``<think_bbox>``; a
    parse failure leaves ``span``/``think``/``pred`` None and the tubes empty.
    """

    id: str
    format: str
    text: str
    error: str | None
    detail: str
    span: tuple[int, int] | None
    think: dict[int, list[float]] | None
    pred: dict[int, list[float]] | None
    consistent: bool
    pred_tube: dict[int, list[float]]
    think_tube: dict[int, list[float]] | None
    frame_numbers: list[int]
    model_size: tuple[int, int]
    latency_s: float = 0.0
    prep_s: float = 0.0
    generated_tokens: int = 0
    truncated: bool = False
    peak_mem_bytes: int | None = None
    mem_measure: str = ""
    batch_size: int = 1
    backend: str = "hf"

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict; frame and index keys become strings."""
        d = asdict(self)
        for key in ("think", "pred", "pred_tube", "think_tube"):
            if d[key] is not None:
                d[key] = {str(k): v for k, v in sorted(d[key].items())}
        d["span"] = list(self.span) if self.span is not None else None
        d["model_size"] = list(self.model_size)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Prediction":
        """Inverse of :meth:`to_dict`; unknown keys are ignored (newer writers), missing optional ones default."""
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for key in ("think", "pred", "pred_tube", "think_tube"):
            if d.get(key) is not None:
                d[key] = {int(k): [float(x) for x in v] for k, v in d[key].items()}
        if d.get("span") is not None:
            d["span"] = (int(d["span"][0]), int(d["span"][1]))
        d["model_size"] = (int(d["model_size"][0]), int(d["model_size"][1]))
        d["frame_numbers"] = [int(f) for f in d["frame_numbers"]]
        return cls(**d)


def _rounded(tube: Mapping[int, Sequence[float]]) -> dict[int, list[float]]:
    return {int(k): [round(float(v), COORD_DECIMALS) for v in box] for k, box in tube.items()}


def make_prediction(
    sample: Sample,
    text: str,
    frame_numbers: Sequence[int] | np.ndarray,
    model_size: tuple[int, int],
    fmt: "str | AnswerFormat" = "paper",
    **measures: Any,
) -> Prediction:
    """Parse ``text`` (Eq. 2) and map its boxes to ``sample``'s original frames and pixels.

    ``frame_numbers`` ``(T,)`` are the original frames the model saw, ``model_size`` their
    ``(w, h)``. ``measures`` fills the Table 9 fields (``latency_s``, ``generated_tokens``, ...).
    Never raises on a bad answer: the error is recorded and the tubes are empty.
    """
    fmt = get_format(fmt)
    parsed = parse_answer(text, fmt)
    fn = [int(f) for f in np.asarray(frame_numbers).tolist()]
    size = (int(model_size[0]), int(model_size[1]))
    orig = (int(sample.width), int(sample.height))
    pred_tube: dict[int, list[float]] = {}
    think_tube: dict[int, list[float]] | None = {} if fmt.think else None
    if parsed.ok:
        pred_tube = _rounded(answer_to_tube(parsed.span, parsed.pred, fn, sample.num_frames, orig, size))
        if fmt.think and parsed.think is not None:
            think_tube = _rounded(answer_to_tube(parsed.span, parsed.think, fn, sample.num_frames, orig, size))
    return Prediction(
        id=sample.id,
        format=fmt.name,
        text=text,
        error=parsed.error,
        detail=parsed.detail,
        span=parsed.span,
        think=parsed.think,
        pred=parsed.pred,
        consistent=parsed.consistent,
        pred_tube=pred_tube,
        think_tube=think_tube,
        frame_numbers=fn,
        model_size=size,
        **measures,
    )


def answer_token_budget(tokenizer: Any, num_frames: int, size: tuple[int, int], fmt: "str | AnswerFormat" = "paper") -> int:
    """Tokens of the longest valid answer over ``num_frames`` frames of ``size = (w, h)``, plus slack.

    The worst case is the span ``0 - (T-1)`` with every box ``[w, h, w, h]`` (the most digits a
    coordinate on the frame can have), serialized by :func:`~stvg_lab.answer.format_answer`, plus
    :data:`BUDGET_SLACK_TOKENS` for ``<|im_end|>`` and extra white space.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    w, h = int(size[0]), int(size[1])
    boxes = {k: [w, h, w, h] for k in range(num_frames)}
    worst = format_answer((0, num_frames - 1), boxes, boxes, fmt)
    return len(tokenizer(worst, add_special_tokens=False)["input_ids"]) + BUDGET_SLACK_TOKENS




def _parse_line(path: Path, lineno: int, line: str) -> Prediction:
    try:
        return Prediction.from_dict(json.loads(line))
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise ValueError(f"{path}:{lineno}: not a prediction record ({type(e).__name__}: {e}); delete the line or the file") from e


def _scan(path: Path) -> tuple[list[Prediction], int]:
    """Records of ``path`` and the byte length of its valid prefix (a bad final line excluded)."""
    data = path.read_bytes()
    records: list[Prediction] = []
    pos, lineno = 0, 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        end = len(data) if nl < 0 else nl + 1
        lineno += 1
        raw = data[pos:end].decode("utf-8", errors="replace")
        if raw.strip():
            try:
                records.append(_parse_line(path, lineno, raw))
            except ValueError:
                if end < len(data):  # a bad line in the middle is corruption, not an interrupted write
                    raise
                logger.warning("%s:%d: dropping a truncated last line (%d bytes), probably from a killed run", path, lineno, len(raw))
                return records, pos
            if nl < 0:  # a complete record without its newline: keep it, the next append adds one
                return records, len(data)
        pos = end
    return records, len(data)


def read_predictions(path: str | Path) -> list[Prediction]:
    """The records of a predictions JSONL, in file order; a truncated last line is dropped with a warning.

    A malformed line elsewhere raises ValueError naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file not found: {path}")
    return _scan(path)[0]


def _open_for_append(path: Path, resume: bool) -> tuple[dict[str, Prediction], Any]:
    """Done records by id and an append handle; repairs a truncated tail, or starts over without ``resume``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[str, Prediction] = {}
    if resume and path.exists():
        records, valid = _scan(path)
        with path.open("r+b") as f:
            f.truncate(valid)
            if valid:
                f.seek(valid - 1)
                if f.read(1) != b"\n":
                    f.write(b"\n")
        for rec in records:
            done[rec.id] = rec
        if done:
            logger.info("%s: resuming, %d predictions already done", path, len(done))
    handle = path.open("a" if resume else "w", encoding="utf-8")
    return done, handle


def _append(handle: Any, predictions: Sequence[Prediction]) -> None:
    for p in predictions:
        handle.write(json.dumps(p.to_dict()) + "\n")
    handle.flush()
    os.fsync(handle.fileno())




class _PeakRSS:
    """Peak resident set size (bytes) of this process while the ``with`` block runs."""

    def __init__(self, interval: float = RSS_POLL_S) -> None:
        self.interval = interval
        self.page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self.available = Path("/proc/self/statm").exists()
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "_PeakRSS":
        if self.available:
            self.peak = self._rss()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self._rss())
        else:
            # lifetime high-water mark: kilobytes on Linux, bytes on macOS
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak = int(rss if sys.platform == "darwin" else rss * 1024)


@contextmanager
def measure_peak_memory(device: torch.device | str) -> Iterator[dict[str, Any]]:
    """Yield a dict that holds ``peak_mem_bytes`` and ``mem_measure`` once the block ends (module docstring)."""
    device = torch.device(device)
    out: dict[str, Any] = {"peak_mem_bytes": None, "mem_measure": "unavailable"}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield out
        torch.cuda.synchronize(device)
        out.update(peak_mem_bytes=int(torch.cuda.max_memory_allocated(device)), mem_measure="cuda_max_allocated")
        return
    rss = _PeakRSS()
    with rss:
        yield out
    out.update(peak_mem_bytes=int(rss.peak), mem_measure="cpu_rss_peak" if rss.available else "cpu_maxrss")




@dataclass
class _Generated:
    text: str
    tokens: int
    truncated: bool


def _stop_ids(processor: Any) -> list[int]:
    eos = generation_kwargs(processor)["eos_token_id"]
    return [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]


def _count_tokens(row: list[int], stop: set[int]) -> tuple[int, bool]:
    """New tokens up to and including the first stop token; ``truncated`` when there is none."""
    for i, t in enumerate(row):
        if t in stop:
            return i + 1, False
    return len(row), True


def _generate_hf(
    model: Any, processor: Any, clips: Sequence[Clip], prompts: Sequence[str], max_new_tokens: int, sampling: dict[str, Any]
) -> list[_Generated]:
    """One ``model.generate`` over the batch (left padding); returns the texts and token counts."""
    inputs = build_model_inputs(processor, [c.frames for c in clips], list(prompts), fps=clips[0].fps, padding_side="left")
    device = model.device
    inputs = {k: v.to(device) for k, v in inputs.items()}
    # the vision tower runs in the model's dtype (bf16 on CUDA); the processor gives float32
    inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(model.dtype)
    with torch.inference_mode():
        out = model.generate(**inputs, **generation_kwargs(processor), max_new_tokens=max_new_tokens, **sampling)
    new = out[:, inputs["input_ids"].shape[1]:].tolist()  # (B, <= max_new_tokens)
    stop = set(_stop_ids(processor))
    results = []
    for row in new:
        n, truncated = _count_tokens(row, stop)
        text = processor.tokenizer.decode(row[:n], skip_special_tokens=True)
        results.append(_Generated(text, n, truncated))
    return results


def _import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            "backend='vllm' needs vLLM on a CUDA machine: pip install -e '.[gpu]' "
            "(or use backend='hf', which needs nothing extra)"
        ) from e
    return vllm


def load_vllm(model_path: str | Path, **llm_kwargs: Any) -> Any:
    """A ``vllm.LLM`` for a local Qwen2.5-VL checkpoint: bf16, one video per prompt, seed 0.

    ``llm_kwargs`` override the defaults (e.g. ``max_model_len``, ``gpu_memory_utilization``).
    """
    vllm = _import_vllm()
    kwargs = dict(dtype="bfloat16", limit_mm_per_prompt={"video": 1, "image": 0}, seed=0, max_model_len=32768)
    kwargs.update(llm_kwargs)
    return vllm.LLM(model=str(model_path), **kwargs)


def _generate_vllm(
    llm: Any, processor: Any, clips: Sequence[Clip], prompts: Sequence[str], max_new_tokens: int, sampling: dict[str, Any]
) -> list[_Generated]:
    """``llm.generate`` with the same chat text and frames as the HF path (one video per prompt)."""
    vllm = _import_vllm()
    size = processor.video_processor.size
    get = size.get if isinstance(size, Mapping) else (lambda k: getattr(size, k, None))
    lo, hi = get("shortest_edge"), get("longest_edge")
    params = vllm.SamplingParams(
        max_tokens=max_new_tokens,
        temperature=float(sampling.get("temperature", 1.0)) if sampling.get("do_sample") else 0.0,
        top_p=float(sampling.get("top_p", 1.0)) if sampling.get("do_sample") else 1.0,
        stop_token_ids=_stop_ids(processor),
        skip_special_tokens=True,
        seed=sampling.get("seed"),
    )
    requests = []
    for clip, prompt in zip(clips, prompts):
        text = processor.apply_chat_template(video_messages(clip.frames, prompt), add_generation_prompt=True, tokenize=False)
        requests.append(
            {
                "prompt": text,
                "multi_modal_data": {"video": clip.frames},  # (T, H, W, 3) uint8, already sampled at clip.fps
                # the frames' rate (not a resampling target) and our resize bounds, as the HF path uses them
                "mm_processor_kwargs": {"fps": clip.fps, "size": {"shortest_edge": lo, "longest_edge": hi}},
            }
        )
    outputs = llm.generate(requests, params, use_tqdm=False)
    results = []
    for o in outputs:
        c = o.outputs[0]
        results.append(_Generated(c.text, len(c.token_ids), c.finish_reason == "length"))
    return results




def predict(
    model: Any,
    processor: Any,
    samples: Sequence[Sample],
    fmt: "str | AnswerFormat" = "paper",
    batch_size: int = 4,
    max_new_tokens: int | None = None,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    seed: int | None = None,
    out_path: str | Path | None = None,
    resume: bool = True,
    backend: str = "hf",
    progress: bool = True,
) -> list[Prediction]:
    """Answer every sample and map the answers back to original frames and pixels (module docstring).

    ``model``: for ``backend="hf"`` a Qwen2.5-VL from :func:`~stvg_lab.model.load_model`; for
    ``"vllm"`` a ``vllm.LLM`` or a checkpoint path (then :func:`load_vllm` builds one, and
    ``processor`` may be None to load the checkpoint's). ``max_new_tokens=None``:
    :func:`answer_token_budget` of each batch's longest clip. Greedy unless ``do_sample``.
    ``out_path``: JSONL written per batch; with ``resume`` the ids already there are not asked
    again, whatever weights wrote them (:func:`stvg_lab.evaluate.evaluate_model` checks that they are
    the same). Returns one :class:`Prediction` per sample, in ``samples`` order.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    fmt = get_format(fmt)
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"sample id {dup!r} appears more than once; ids must be unique")
    if backend == "vllm":
        if isinstance(model, (str, Path)):
            if processor is None:
                from stvg_lab.processor import load_processor

                processor = load_processor(model)
            model = load_vllm(model)
        elif processor is None:
            raise ValueError("backend='vllm' with a vllm.LLM needs the checkpoint's processor (stvg_lab.processor.load_processor)")
    sampling: dict[str, Any] = {"do_sample": bool(do_sample)}
    if do_sample:
        sampling.update(temperature=float(temperature), top_p=float(top_p))
    if seed is not None:
        if backend == "vllm":
            sampling["seed"] = int(seed)
        else:
            torch.manual_seed(int(seed))

    wanted = set(ids)
    done: dict[str, Prediction] = {}
    handle = None
    if out_path is not None:
        done, handle = _open_for_append(Path(out_path), resume)
        clash = next((r for sid, r in done.items() if sid in wanted and r.format != fmt.name), None)
        if clash is not None:
            handle.close()
            raise ValueError(
                f"{out_path}: the record of {clash.id!r} was written with format {clash.format!r}, not {fmt.name!r}; "
                "pass resume=False or another out_path"
            )
    todo = [s for s in samples if s.id not in done]
    results: dict[str, Prediction] = {sid: done[sid] for sid in ids if sid in done}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(samples), initial=len(samples) - len(todo), disable=not progress, desc=f"predict ({fmt.name})", unit="sample")
    try:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            t0 = time.perf_counter()
            clips = [load_clip(s) for s in batch]
            prompts = [prompt_text(s, c, fmt) for s, c in zip(batch, clips)]
            budget = max_new_tokens or max(
                answer_token_budget(processor.tokenizer, len(c.frame_numbers), c.size, fmt) for c in clips
            )
            prep = time.perf_counter() - t0
            mem: dict[str, Any] = {"peak_mem_bytes": None, "mem_measure": "unavailable"}
            if backend == "hf":
                with measure_peak_memory(model.device) as mem:
                    t1 = time.perf_counter()
                    outs = _generate_hf(model, processor, clips, prompts, budget, sampling)
                    elapsed = time.perf_counter() - t1
            else:
                t1 = time.perf_counter()
                outs = _generate_vllm(model, processor, clips, prompts, budget, sampling)
                elapsed = time.perf_counter() - t1
            n = len(batch)
            preds = [
                make_prediction(
                    s, g.text, c.frame_numbers, c.size, fmt,
                    latency_s=elapsed / n, prep_s=prep / n, generated_tokens=g.tokens, truncated=g.truncated,
                    peak_mem_bytes=mem["peak_mem_bytes"], mem_measure=mem["mem_measure"], batch_size=n, backend=backend,
                )
                for s, c, g in zip(batch, clips, outs)
            ]
            if handle is not None:
                _append(handle, preds)
            for p in preds:
                results[p.id] = p
            errors = sorted({p.error for p in preds if p.error})
            if errors:
                logger.debug("batch of %d: %d answers failed to parse (%s)", n, sum(not p.ok for p in preds), ", ".join(errors))
            bar.update(n)
    finally:
        bar.close()
        if handle is not None:
            handle.close()
    return [results[sid] for sid in ids]
