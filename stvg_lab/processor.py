"""Qwen2.5-VL input processing for video without torchvision.

transformers' ``Qwen2VLVideoProcessor`` imports torchvision, and the torchvision wheel cannot run
against the CPU build of torch used here. This module reproduces what that processor gives the
model for a video, with numpy and PIL:

* ``pixel_values_videos``: ``(sum_i T_i/2 * H_i/14 * W_i/14, 3 * 2 * 14 * 14)`` float32 patches;
* ``video_grid_thw``: ``(n_videos, 3)`` = ``(T/2, H/14, W/14)``;
* ``second_per_grid_ts``: ``temporal_patch_size / fps`` seconds per temporal patch (1.0 at 2 fps);
  Qwen2.5-VL turns it into absolute-time rotary positions;
* ``T/2 * H/28 * W/28`` ``<|video_pad|>`` tokens in the prompt, and ``mm_token_type_ids``
  (2 on those tokens, 0 elsewhere), without which the model silently falls back to 1-D positions.

The rules are those of the HF processor: ``smart_resize`` to multiples of ``patch * merge = 28``
within ``[min_pixels, max_pixels]`` (bicubic, here PIL's), rescale by 1/255, normalise with the
CLIP mean and std, pad an odd ``T`` by repeating the last frame, then patchify with temporal patch
2 and merge 2 in the order the vision tower expects. Frames that are already multiples of 28 (all
frames from ``stvg_lab.video``) are not resized, so the output is exact; a resize uses PIL's
bicubic filter where the HF processor uses torchvision's, which can differ by one grey level.

:func:`load_processor` is the one entry point. It builds a :class:`Qwen2_5_VLFramesProcessor`
(a ``Qwen2_5_VLProcessor``) around the HF video processor when torchvision imports cleanly and
around :class:`VideoFramesProcessor` otherwise. Both backends share these conventions:

* frames arrive already sampled; ``fps`` (or ``video_metadata[i].fps``) is their rate, never a
  resampling target, and defaults to 2.0. (The stock processor reads a missing fps as 24 and
  gives ``second_per_grid_ts = 1/12``, which collapses all frames onto one temporal position.)
* a video is a ``(T, H, W, 3)`` uint8 array, a list of PIL images or ``(H, W, 3)`` arrays, or the
  nested lists a ``datasets.Dataset`` gives back for such an array.

The hurdles this module works around (transformers 5.23):

* ``ProcessorMixin`` checks each sub-processor's class by name; looking up ``VideoProcessorMixin``
  ends in ``VIDEO_PROCESSOR_MAPPING._extra_content``, which does not exist when torchvision is
  missing. :meth:`Qwen2_5_VLFramesProcessor.check_argument_for_proper_class` checks with
  ``isinstance`` instead.
* ``Qwen2_5_VLProcessor._process_videos`` reads ``video_metadata[i].sampled_fps``; ours supplies
  the metadata and computes ``second_per_grid_ts`` itself.
* Qwen's chat template tests ``'video' in content``; our template (``assets/chat_template.jinja``)
  dispatches on ``content['type']`` and marks the assistant turn with ``{% generation %}``.
* A broken torchvision (the CUDA wheel beside CPU torch) also breaks ``import peft`` and
  ``from trl import GRPOTrainer``; :func:`check_torchvision` says so in one clear error.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import logging
import math
from pathlib import Path
from typing import Any, Sequence, TypedDict

import numpy as np
import torch
from PIL import Image
from transformers import AutoTokenizer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling
from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.processing_utils import ProcessorMixin
from transformers.feature_extraction_utils import BatchFeature
from transformers.tokenization_utils_base import PreTrainedTokenizerBase
from transformers.video_processing_utils import VideoProcessorMixin
from transformers.video_utils import VideoMetadata

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
CHAT_TEMPLATE_FILE = ASSETS / "chat_template.jinja"

DEFAULT_FPS = 2.0  # paper §4: frames are sampled at 2 fps
PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
MIN_PIXELS = 56 * 56  # Qwen2.5-VL-Instruct's preprocessor_config.json
MAX_PIXELS = 28 * 28 * 16384  # 12,845,056, idem
VIDEO_TOKEN_TYPE = 2  # mm_token_type_ids: 0 text, 1 image, 2 video

VISION_SPECIAL_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")
"""Tokens generation must never emit: a sampled pad token breaks the feature/token count."""


class BrokenTorchvisionError(ImportError):
    """torchvision is installed but cannot be imported against this torch."""


def _torchvision_spec() -> Any:
    return importlib.util.find_spec("torchvision")


def _import_torchvision() -> None:
    importlib.import_module("torchvision")
    importlib.import_module("torchvision.transforms.v2.functional")


def torchvision_status() -> tuple[str, str]:
    """``("ok" | "missing" | "broken", detail)`` for the installed torchvision."""
    try:
        spec = _torchvision_spec()
    except (ImportError, ValueError) as exc:
        return "broken", f"{type(exc).__name__}: {exc}"
    if spec is None:
        return "missing", "torchvision is not installed"
    try:
        _import_torchvision()
    except Exception as exc:  # a CUDA wheel against CPU torch raises RuntimeError/OSError, not ImportError
        return "broken", f"{type(exc).__name__}: {exc}"
    return "ok", ""


def check_torchvision() -> bool:
    """True when torchvision imports cleanly, False when it is absent; raise when it is broken.

    A torchvision that is installed but cannot load (typically the CUDA wheel next to the CPU
    torch) makes transformers try to use it, so ``import peft`` and ``from trl import
    GRPOTrainer`` fail too. stvg_lab never needs torchvision on CPU.
    """
    status, detail = torchvision_status()
    if status == "broken":
        raise BrokenTorchvisionError(
            f"torchvision is installed but cannot be imported ({detail}); it also breaks `import peft` and "
            "`from trl import GRPOTrainer`. On a CPU machine run `pip uninstall torchvision` (stvg_lab does not "
            "need it); on a GPU machine install the torchvision build that matches your torch."
        )
    return status == "ok"


def smart_resize(
    height: int, width: int, factor: int = PATCH_SIZE * MERGE_SIZE, min_pixels: int = MIN_PIXELS, max_pixels: int = MAX_PIXELS
) -> tuple[int, int]:
    """Qwen2-VL's resize rule: ``(h, w)`` multiples of ``factor``, area in ``[min_pixels, max_pixels]``.

    The same arithmetic as ``transformers.models.qwen2_vl.image_processing_pil_qwen2_vl.smart_resize``
    (round each side to the grid, then rescale both sides if the area leaves the bounds).
    """
    if min(height, width) <= 0:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def video_token_count(
    num_frames: int,
    height: int,
    width: int,
    patch_size: int = PATCH_SIZE,
    merge_size: int = MERGE_SIZE,
    temporal_patch_size: int = TEMPORAL_PATCH_SIZE,
) -> int:
    """Number of ``<|video_pad|>`` tokens for a clip already on the grid: ``ceil(T/2) * H/28 * W/28``."""
    factor = patch_size * merge_size
    if height % factor or width % factor:
        raise ValueError(f"frame size {width}x{height} is not a multiple of {factor}; resize with smart_resize first")
    grid_t = -(-num_frames // temporal_patch_size)
    return grid_t * (height // factor) * (width // factor)


def _as_frames_array(video: Any) -> np.ndarray:
    """One video as a ``(T, H, W, 3)`` uint8 array (channels-first, greyscale and PIL accepted)."""
    if isinstance(video, torch.Tensor):
        video = video.detach().cpu().numpy()
    if isinstance(video, Image.Image):
        video = [video]
    if isinstance(video, (list, tuple)):
        if not video:
            raise ValueError("a video has no frames")
        video = np.stack([np.asarray(f.convert("RGB")) if isinstance(f, Image.Image) else np.asarray(f) for f in video])
    arr = np.asarray(video)
    if arr.ndim == 3:  # one frame
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"a video must be (T, H, W, 3) frames, got an array of shape {arr.shape}")
    if arr.shape[-1] not in (1, 3) and arr.shape[1] in (1, 3):
        arr = arr.transpose(0, 2, 3, 1)  # (T, C, H, W) -> (T, H, W, C)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.shape[-1] != 3:
        raise ValueError(f"a video must have 1 or 3 channels, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.size and float(arr.max()) <= 1.0:
            raise ValueError("float frames in [0, 1] are ambiguous; pass uint8 frames in [0, 255]")
        arr = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return arr


def _is_frame(x: Any) -> bool:
    return isinstance(x, Image.Image) or (isinstance(x, np.ndarray) and x.ndim == 3)


def flatten_videos(videos: Any) -> list[np.ndarray]:
    """Every video in ``videos`` (one video, a list, or a per-conversation nested list) as arrays.

    Accepts what ``apply_chat_template`` collects (``[[video], [video]]``), plain lists of videos,
    a single ``(T, H, W, 3)`` array, a list of PIL frames, and the nested Python lists that a
    ``datasets.Dataset`` returns for an array column.
    """
    if videos is None:
        return []
    if isinstance(videos, torch.Tensor):
        videos = videos.detach().cpu().numpy()
    if isinstance(videos, np.ndarray):
        if videos.ndim == 5:
            return [_as_frames_array(v) for v in videos]
        return [_as_frames_array(videos)]
    if isinstance(videos, Image.Image):
        return [_as_frames_array(videos)]
    if not isinstance(videos, (list, tuple)):
        raise ValueError(f"videos must be arrays, PIL frames or lists of them, got {type(videos).__name__}")
    if not videos:
        return []
    if all(_is_frame(x) for x in videos):
        return [_as_frames_array(list(videos))]
    first = videos[0]
    if isinstance(first, (list, tuple)) and first and not isinstance(first[0], (list, tuple, np.ndarray, Image.Image, torch.Tensor)):
        raise ValueError("videos: nested lists must end in frames (H, W, 3), not in scalars")
    if isinstance(first, (list, tuple)) and first and _is_numeric_nested(first):
        arr = np.asarray(videos)
        if arr.dtype != object and arr.ndim in (4, 5):
            return flatten_videos(arr)
    out: list[np.ndarray] = []
    for item in videos:
        out.extend(flatten_videos(item))
    return out


def _is_numeric_nested(x: Any, depth: int = 0) -> bool:
    """True for nested lists of numbers (a datasets row holding a frames array)."""
    while isinstance(x, (list, tuple)) and x and depth < 6:
        x, depth = x[0], depth + 1
    return depth >= 2 and isinstance(x, (int, float, np.integer, np.floating))


def _with_min_pixels(size: Any, min_pixels: int) -> Any:
    """A copy of a size dict or SizeDict with ``shortest_edge = min_pixels``."""
    if isinstance(size, dict):
        return {**size, "shortest_edge": min_pixels}
    return dataclasses.replace(size, shortest_edge=min_pixels)


def _pixel_bounds(size: Any) -> tuple[int, int]:
    """``(min_pixels, max_pixels)`` from a ``{"shortest_edge", "longest_edge"}`` dict or SizeDict."""
    get = size.get if isinstance(size, dict) else lambda k, d=None: getattr(size, k, d)
    lo, hi = get("shortest_edge"), get("longest_edge")
    if not lo or not hi:
        raise ValueError(f"size must hold 'shortest_edge' and 'longest_edge' (pixel counts), got {size}")
    return int(lo), int(hi)


class VideoFramesKwargs(TypedDict, total=False):
    """Keyword arguments of :class:`VideoFramesProcessor` (those of ``Qwen2VLVideoProcessor``)."""

    do_convert_rgb: bool
    do_resize: bool
    size: dict
    resample: int
    do_rescale: bool
    rescale_factor: float
    do_normalize: bool
    image_mean: Any
    image_std: Any
    patch_size: int
    temporal_patch_size: int
    merge_size: int
    min_pixels: int
    max_pixels: int
    min_frames: int
    max_frames: int
    cap_pixels_per_frame: bool
    max_video_tokens: int
    do_sample_frames: bool
    video_metadata: Any
    fps: float
    num_frames: int
    return_metadata: bool
    return_tensors: Any
    device: Any
    input_data_format: Any
    data_format: Any
    default_to_square: bool
    do_center_crop: bool
    crop_size: Any
    do_pad: bool


class VideoFramesProcessor(VideoProcessorMixin):
    """``Qwen2VLVideoProcessor`` in numpy + PIL, for already decoded and sampled frames.

    Same defaults, configuration keys and outputs as the HF class; it saves itself as a
    ``Qwen2VLVideoProcessor`` so that a checkpoint written here loads with ``AutoProcessor``
    where torchvision works.
    """

    resample = PILImageResampling.BICUBIC
    size = {"shortest_edge": 128 * 28 * 28, "longest_edge": 28 * 28 * 768}
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    do_resize = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    patch_size = PATCH_SIZE
    temporal_patch_size = TEMPORAL_PATCH_SIZE
    merge_size = MERGE_SIZE
    min_frames = 4
    max_frames = 768
    do_sample_frames = False
    cap_pixels_per_frame = None
    max_video_tokens = 128000
    return_metadata = False
    valid_kwargs = VideoFramesKwargs
    model_input_names = ["pixel_values_videos", "video_grid_thw"]
    saved_as = "Qwen2VLVideoProcessor"

    def __init__(self, **kwargs: Any) -> None:
        size = dict(kwargs.pop("size", None) or self.size)
        if (min_pixels := kwargs.pop("min_pixels", None)) is not None:
            size["shortest_edge"] = min_pixels
        if (max_pixels := kwargs.pop("max_pixels", None)) is not None:
            size["longest_edge"] = max_pixels
        size.pop("min_pixels", None)
        size.pop("max_pixels", None)
        known = {k: kwargs.pop(k) for k in list(kwargs) if k in VideoFramesKwargs.__annotations__}
        # Keys a saved config carries that are not processing options (e.g. "video_processor_type").
        for key in ("video_processor_type", "image_processor_type", "processor_class", "auto_map"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        self.size = size
        for key, value in known.items():
            if value is not None:
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        """The ``Qwen2VLVideoProcessor`` configuration this processor is equivalent to."""
        out = {
            key: getattr(self, key)
            for key in (
                "do_convert_rgb", "do_resize", "size", "resample", "do_rescale", "rescale_factor", "do_normalize",
                "image_mean", "image_std", "patch_size", "temporal_patch_size", "merge_size", "min_frames",
                "max_frames", "do_sample_frames", "return_metadata", "max_video_tokens",
            )
        }
        out["size"] = dict(self.size)
        out["resample"] = int(self.resample)
        out["image_mean"] = list(self.image_mean)
        out["image_std"] = list(self.image_std)
        out["video_processor_type"] = self.saved_as
        return out

    def _options(self, kwargs: dict) -> dict[str, Any]:
        unknown = set(kwargs) - set(VideoFramesKwargs.__annotations__)
        if unknown:
            raise TypeError(f"VideoFramesProcessor got unknown argument(s) {sorted(unknown)}")
        opts = {k: (kwargs[k] if kwargs.get(k) is not None else getattr(self, k, None)) for k in VideoFramesKwargs.__annotations__}
        size = dict(opts["size"]) if isinstance(opts["size"], dict) else {"shortest_edge": opts["size"].shortest_edge, "longest_edge": opts["size"].longest_edge}
        if kwargs.get("min_pixels") is not None:
            size["shortest_edge"] = kwargs["min_pixels"]
        if kwargs.get("max_pixels") is not None:
            size["longest_edge"] = kwargs["max_pixels"]
        opts["size"] = size
        return opts

    def target_size(self, num_frames: int, height: int, width: int, **kwargs: Any) -> tuple[int, int]:
        """``(h, w)`` the frames are resized to (HF ``Qwen2VLVideoProcessor.resize``)."""
        return self._target_size(num_frames, height, width, self._options(kwargs))

    @staticmethod
    def _target_size(num_frames: int, height: int, width: int, opts: dict[str, Any]) -> tuple[int, int]:
        if not opts["do_resize"]:
            return height, width
        min_pixels, max_pixels = _pixel_bounds(opts["size"])
        factor = opts["patch_size"] * opts["merge_size"]
        if opts["cap_pixels_per_frame"]:
            # qwen-vl-utils' total budget: an even share of max_video_tokens per frame pair.
            total_pixels = int(opts["max_video_tokens"] * factor * factor * 0.9)
            max_pixels = max(min(max_pixels, total_pixels * opts["temporal_patch_size"] // num_frames), int(min_pixels * 1.05))
        return smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)

    def patchify(self, video: np.ndarray, patch_size: int, merge_size: int, temporal_patch_size: int) -> tuple[np.ndarray, tuple[int, int, int]]:
        """``(T, C, H, W)`` float32 -> ``(T/tp * H/p * W/p, C*tp*p*p)`` patches and ``(T/tp, H/p, W/p)``.

        An odd ``T`` is padded by repeating the last frame (HF rule). Patches are ordered
        ``(t, h/merge, w/merge, merge_h, merge_w)`` so that each 2x2 group the vision tower merges
        into one LM token is contiguous; each row holds ``(C, tp, p, p)`` values.
        """
        num_frames, channels, height, width = video.shape
        if pad := -num_frames % temporal_patch_size:
            video = np.concatenate([video, np.repeat(video[-1:], pad, axis=0)], axis=0)
            num_frames += pad
        grid_t, grid_h, grid_w = num_frames // temporal_patch_size, height // patch_size, width // patch_size
        patches = video.reshape(
            grid_t, temporal_patch_size, channels,
            grid_h // merge_size, merge_size, patch_size,
            grid_w // merge_size, merge_size, patch_size,
        )
        # (gt, tp, C, gh, mh, ph, gw, mw, pw) -> (gt, gh, gw, mh, mw, C, tp, ph, pw)
        patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        flat = patches.reshape(grid_t * grid_h * grid_w, channels * temporal_patch_size * patch_size * patch_size)
        return np.ascontiguousarray(flat), (grid_t, grid_h, grid_w)

    def preprocess(self, videos: Any, **kwargs: Any) -> BatchFeature:
        """Resize, rescale, normalise and patchify already sampled frames (see the module docstring)."""
        opts = self._options(kwargs)
        if opts["do_sample_frames"]:
            raise NotImplementedError(
                "VideoFramesProcessor does not decode or sample videos: pass frames already sampled by "
                "stvg_lab.video (do_sample_frames=False) and give their rate as fps or video_metadata"
            )
        clips = flatten_videos(videos)
        if not clips:
            raise ValueError("no video frames were given")
        factor = opts["patch_size"] * opts["merge_size"]
        mean = np.asarray(opts["image_mean"], dtype=np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(opts["image_std"], dtype=np.float32).reshape(1, 3, 1, 1)
        all_patches, grids = [], []
        for clip in clips:
            num_frames, height, width, _ = clip.shape
            h, w = self._target_size(num_frames, height, width, opts)
            if (h, w) != (height, width):
                resample = Image.Resampling(int(opts["resample"]))
                clip = np.stack([np.asarray(Image.fromarray(f).resize((w, h), resample=resample)) for f in clip])
            elif h % factor or w % factor:
                raise ValueError(f"frames of {width}x{height} are not multiples of {factor}; enable do_resize")
            video = clip.transpose(0, 3, 1, 2).astype(np.float32)  # (T, C, H, W)
            # Fused rescale + normalise, as the HF video processor does: (x - 255*mean) / (255*std).
            if opts["do_rescale"] and opts["do_normalize"]:
                scale = np.float32(1.0 / opts["rescale_factor"])
                video = (video - mean * scale) / (std * scale)
            elif opts["do_rescale"]:
                video = video * np.float32(opts["rescale_factor"])
            elif opts["do_normalize"]:
                video = (video - mean) / std
            patches, grid = self.patchify(video, opts["patch_size"], opts["merge_size"], opts["temporal_patch_size"])
            all_patches.append(patches)
            grids.append(grid)
        pixel_values = np.concatenate(all_patches, axis=0)
        grid_thw = np.asarray(grids, dtype=np.int64)
        tensor_type = opts["return_tensors"]
        if tensor_type in (None, "pt"):
            data = {"pixel_values_videos": torch.from_numpy(pixel_values), "video_grid_thw": torch.from_numpy(grid_thw)}
        else:
            data = {"pixel_values_videos": pixel_values, "video_grid_thw": grid_thw}
        out = BatchFeature(data=data, tensor_type=None if tensor_type in (None, "pt") else tensor_type)
        if opts["return_metadata"]:
            out["video_metadata"] = _metadata_list(clips, opts["video_metadata"], opts["fps"])
        return out

    def get_num_of_video_patches(self, num_frames: int, height: int, width: int, videos_kwargs: dict | None = None) -> int:
        """Patches of one video of this size (HF ``get_num_of_video_patches``; vLLM and TRL call it)."""
        kwargs = {k: v for k, v in (videos_kwargs or {}).items() if k in ("size", "patch_size", "merge_size", "temporal_patch_size") and v is not None}
        opts = self._options(kwargs)
        h, w = self._target_size(num_frames, height, width, opts)
        grid_t = -(-num_frames // opts["temporal_patch_size"])
        return grid_t * (h // opts["patch_size"]) * (w // opts["patch_size"])


def _metadata_list(clips: Sequence[np.ndarray], video_metadata: Any, fps: float | None) -> list[VideoMetadata]:
    """One ``VideoMetadata`` per clip; ``fps`` (default 2.0) is the rate of the given frames."""
    if video_metadata is None:
        rate = float(fps) if fps else DEFAULT_FPS
        return [VideoMetadata(total_num_frames=len(c), fps=rate, height=c.shape[1], width=c.shape[2]) for c in clips]
    items = video_metadata if isinstance(video_metadata, (list, tuple)) else [video_metadata]
    if items and isinstance(items[0], (list, tuple)):
        items = [m for sub in items for m in sub]
    out = [m if isinstance(m, VideoMetadata) else VideoMetadata(**m) for m in items]
    if len(out) != len(clips):
        raise ValueError(f"got {len(clips)} videos but {len(out)} video_metadata entries; give one per video")
    return out


TEXT_FIRST_OFF, TEXT_FIRST_ON = "{%- set text_first = false %}", "{%- set text_first = true %}"


def stvg_chat_template(text_first: bool = False) -> str:
    """Our Qwen2.5-VL chat template (``assets/chat_template.jinja``); ``text_first`` puts a turn's text before its video.

    Why a template and not an argument: the order a checkpoint was trained with must be the order
    it is asked in, by our inference, by TRL's trainers and by vLLM alike; all of them render the
    checkpoint's own template, which ``final/`` saves beside the weights.
    """
    template = CHAT_TEMPLATE_FILE.read_text(encoding="utf-8")
    return template.replace(TEXT_FIRST_OFF, TEXT_FIRST_ON, 1) if text_first else template


def prompt_order(chat_template: str | None) -> str:
    """``"text_first"`` for our text-first template, ``"video_first"`` for anything else (Qwen's order)."""
    return "text_first" if chat_template and TEXT_FIRST_ON in chat_template else "video_first"


class Qwen2_5_VLFramesProcessor(Qwen2_5_VLProcessor):
    """``Qwen2_5_VLProcessor`` for already sampled frames, with either video backend.

    Differences from the stock processor: any ``VideoProcessorMixin`` is accepted as the video
    processor; videos are normalised by :func:`flatten_videos`; ``fps`` is the rate of the given
    frames (default :data:`DEFAULT_FPS`) and never triggers resampling; ``second_per_grid_ts``
    is computed from that rate. It saves itself as a ``Qwen2_5_VLProcessor``.
    """

    default_fps = DEFAULT_FPS

    def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
        """Check the video processor with ``isinstance``; the stock name lookup fails without torchvision."""
        if argument_name == "video_processor":
            if not isinstance(argument, VideoProcessorMixin):
                raise TypeError(f"video_processor must be a VideoProcessorMixin, got {type(argument).__name__}")
            return VideoProcessorMixin
        return super().check_argument_for_proper_class(argument_name, argument)

    def prepare_inputs_layout(self, images: Any = None, text: Any = None, videos: Any = None, audio: Any = None, **kwargs: Any):
        """Normalise ``videos`` to a flat list of ``(T, H, W, 3)`` uint8 arrays before validation."""
        images, text, videos, audio = super().prepare_inputs_layout(images=images, text=text, videos=videos, audio=audio, **kwargs)
        if videos is not None:
            videos = flatten_videos(videos) or None
        return images, text, videos, audio

    def _process_videos(self, videos: Any, **kwargs: Any):
        """Run the video processor with metadata built from ``fps`` and return ``second_per_grid_ts``.

        ``second_per_grid_ts[i] = temporal_patch_size / fps_i`` (1.0 s at 2 fps): Qwen2.5-VL
        multiplies it by ``tokens_per_second`` to space the temporal rotary positions.
        """
        clips = flatten_videos(videos)
        fps = kwargs.pop("fps", None)
        if kwargs.pop("num_frames", None) is not None:
            raise ValueError("num_frames asks for resampling; frames arrive already sampled (stvg_lab.video.load_clip)")
        kwargs["video_metadata"] = _metadata_list(clips, kwargs.get("video_metadata"), fps or self.default_fps)
        for meta in kwargs["video_metadata"]:
            if meta.fps is None:
                meta.fps = float(fps or self.default_fps)
        kwargs["do_sample_frames"] = False
        kwargs["return_metadata"] = True
        processed, replacements = ProcessorMixin._process_videos(self, clips, **kwargs)
        tp = self.video_processor.temporal_patch_size
        processed["second_per_grid_ts"] = [tp / float(m.sampled_fps) for m in processed["video_metadata"]]
        return processed, replacements

    def to_dict(self) -> dict[str, Any]:
        """Serialise as the stock ``Qwen2_5_VLProcessor`` (loadable by ``AutoProcessor``)."""
        out = super().to_dict()
        out["processor_class"] = "Qwen2_5_VLProcessor"
        return out

    def save_pretrained(self, save_directory: Any, push_to_hub: bool = False, **kwargs: Any):
        """Save as a stock ``Qwen2_5_VLProcessor`` (tokenizer_config names it too)."""
        files = super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)
        cfg_path = Path(save_directory) / "tokenizer_config.json"
        if cfg_path.exists():
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            if cfg.get("processor_class") == type(self).__name__:
                cfg["processor_class"] = "Qwen2_5_VLProcessor"
                cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return files


def _read_chat_template(path: Path, tokenizer: PreTrainedTokenizerBase) -> str | None:
    """The checkpoint's own template: chat_template.jinja, chat_template.json or the tokenizer's."""
    if (path / "chat_template.jinja").exists():
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    if (path / "chat_template.json").exists():
        return json.loads((path / "chat_template.json").read_text(encoding="utf-8"))["chat_template"]
    return getattr(tokenizer, "chat_template", None)


def load_processor(
    path: str | Path,
    chat_template: str | None = None,
    backend: str | None = None,
    min_pixels: int | None = MIN_PIXELS,
) -> Qwen2_5_VLFramesProcessor:
    """The processor of a local Qwen2.5-VL checkpoint directory, with or without torchvision.

    ``backend``: ``"hf"`` (transformers' ``Qwen2VLVideoProcessor``, needs torchvision), ``"frames"``
    (:class:`VideoFramesProcessor`) or None: ``"hf"`` when torchvision imports cleanly, else
    ``"frames"``; a broken torchvision raises :class:`BrokenTorchvisionError`.
    ``chat_template``: None keeps the checkpoint's own; ``"stvg"`` uses ours; any other string is
    used as the template itself.
    ``min_pixels``: lower bound of the video resize. Qwen's video default (``128*28*28``) would
    upscale the paper's <=336 px frames and so move the coordinates the answer refers to; the
    default, 56*56 (Qwen2.5-VL-Instruct's ``preprocessor_config.json``), leaves them as they are.
    None keeps the checkpoint's value.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a checkpoint directory")
    has_tv = check_torchvision()
    backend = backend or ("hf" if has_tv else "frames")
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    if backend == "hf":
        if not has_tv:
            raise ImportError("backend='hf' needs a working torchvision; use backend='frames' (no torchvision)")
        from transformers import AutoVideoProcessor

        video_processor = AutoVideoProcessor.from_pretrained(path)
    elif backend == "frames":
        config, _ = VideoFramesProcessor.get_video_processor_dict(path, local_files_only=True)
        video_processor = VideoFramesProcessor.from_dict(config)
    else:
        raise ValueError(f"backend must be 'hf', 'frames' or None, got {backend!r}")
    if min_pixels is not None:
        lo, _ = _pixel_bounds(video_processor.size)
        if lo != min_pixels:
            logger.info("%s: video min_pixels %d -> %d so that frames on the 28-px grid are not resized", path, lo, min_pixels)
            video_processor.size = _with_min_pixels(video_processor.size, min_pixels)
    template = {None: _read_chat_template(path, tokenizer), "stvg": stvg_chat_template()}.get(chat_template, chat_template)
    return Qwen2_5_VLFramesProcessor(
        image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor, chat_template=template
    )
