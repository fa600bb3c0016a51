"""stvg_lab.processor: torchvision-free video inputs for Qwen2.5-VL, checked against what transformers can run here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as hf_smart_resize
from transformers.utils.chat_template_utils import render_jinja_template

import stvg_lab.processor as proc_mod
from stvg_lab.model import build_tiny_model
from stvg_lab.processor import (
    BrokenTorchvisionError,
    Qwen2_5_VLFramesProcessor,
    VideoFramesProcessor,
    check_torchvision,
    flatten_videos,
    load_processor,
    smart_resize,
    stvg_chat_template,
    video_token_count,
)

# Qwen2.5-VL-7B-Instruct's chat_template.json, verbatim: the reference our template must match.
QWEN25VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def processor(tmp_path_factory) -> Qwen2_5_VLFramesProcessor:
    return load_processor(build_tiny_model(tmp_path_factory.mktemp("tiny")))


def clip(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


# (height, width, min_pixels, max_pixels, expected (h, w)), hand-computed with factor 28
SMART_RESIZE_CASES = [
    (224, 224, 3136, 12845056, (224, 224)),  # already on the grid: unchanged
    (196, 336, 3136, 12845056, (196, 336)),  # the paper's 336-px long side, 16:9: unchanged
    (250, 333, 3136, 12845056, (252, 336)),  # rounds each side to the nearest multiple (8.93 -> 9, 11.89 -> 12)
    (20, 30, 3136, 12845056, (56, 84)),  # below min_pixels: scaled up by sqrt(3136/600), ceil to 28
    (1000, 1000, 3136, 200000, (420, 420)),  # above max_pixels: scaled down by sqrt(5), floor to 28
    (196, 336, 100352, 602112, (252, 420)),  # Qwen's video default min (128*28*28) upscales: x1.234, ceil to 28
]


@pytest.mark.parametrize("h, w, lo, hi, expected", SMART_RESIZE_CASES)
def test_smart_resize_cases(h, w, lo, hi, expected):
    assert smart_resize(h, w, 28, lo, hi) == expected
    assert hf_smart_resize(h, w, 28, lo, hi) == expected


def test_smart_resize_rejects_extreme_aspect():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 2100)  # 210:1 > 200:1


@given(st.integers(28, 3000), st.integers(28, 3000))
def test_smart_resize_matches_transformers(h, w):
    if max(h, w) / min(h, w) > 200:
        return
    out = smart_resize(h, w, 28, 3136, 602112)
    assert out == hf_smart_resize(h, w, 28, 3136, 602112)
    assert out[0] % 28 == 0 and out[1] % 28 == 0


# (height, width): frame sizes for the Pil image processor equivalence
PATCHIFY_CASES = [
    (224, 224),  # square, on the grid
    (196, 336),  # landscape, on the grid (a 7x12 merged grid)
    (336, 196),  # portrait
    (250, 333),  # off the grid: both processors resize with PIL bicubic
    (20, 30),  # tiny: upscaled to the minimum area
]


@pytest.mark.parametrize("h, w", PATCHIFY_CASES)
def test_patchify_matches_image_processor_on_identical_frames(h, w):
    # Qwen2VLImageProcessorPil repeats one image over the temporal patch, so a 2-frame clip of
    # that image must give the same patches and grid.
    frame = clip(1, h, w)[0]
    image = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)(images=[Image.fromarray(frame)], return_tensors="np")
    video = VideoFramesProcessor(min_pixels=3136, max_pixels=12845056)(np.stack([frame, frame]), return_tensors="np")
    np.testing.assert_array_equal(video["video_grid_thw"], image["image_grid_thw"])
    np.testing.assert_allclose(video["pixel_values_videos"], image["pixel_values"], rtol=0, atol=1e-6)


def test_patch_rows_are_channel_time_height_width():
    # The vision tower views each row as (C, temporal_patch, 14, 14) (Qwen2_5_VisionPatchEmbed);
    # identical frames cannot show the time order, so use frames that differ.
    video = clip(2, 56, 56)
    out = VideoFramesProcessor(min_pixels=3136, do_normalize=False, do_rescale=False)(video, return_tensors="np")
    rows = out["pixel_values_videos"].reshape(16, 3, 2, 14, 14)
    # row 0 is the top-left 14x14 patch, row 1 its right neighbour (same 2x2 merge group)
    np.testing.assert_array_equal(rows[0, :, 1], video[1, :14, :14].transpose(2, 0, 1))
    np.testing.assert_array_equal(rows[1, :, 0], video[0, :14, 14:28].transpose(2, 0, 1))
    np.testing.assert_array_equal(rows[2, :, 0], video[0, 14:28, :14].transpose(2, 0, 1))


# (T, H, W, expected <|video_pad|> tokens = ceil(T/2) * H/28 * W/28)
TOKEN_CASES = [
    (12, 224, 224, 6 * 8 * 8),  # the synthetic clip: 384
    (12, 196, 336, 6 * 7 * 12),  # a 16:9 HC-STVG frame at 336 px: 504
    (40, 196, 336, 20 * 7 * 12),  # a 20 s HC-STVG video at 2 fps: 1680
    (5, 56, 84, 3 * 2 * 3),  # odd T: padded to 6 frames, 3 temporal patches
    (1, 56, 56, 4),  # one frame: padded to a pair, one temporal patch
]


@pytest.mark.parametrize("t, h, w, expected", TOKEN_CASES)
def test_video_token_count(processor, t, h, w, expected):
    assert video_token_count(t, h, w) == expected
    messages = [{"role": "user", "content": [{"type": "video", "video": clip(t, h, w)}, {"type": "text", "text": "Find it."}]}]
    out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
    ids = out["input_ids"][0]
    assert int((ids == processor.video_token_id).sum()) == expected
    assert out["video_grid_thw"].tolist() == [[-(-t // 2), h // 14, w // 14]]
    assert out["pixel_values_videos"].shape == (expected * 4, 3 * 2 * 14 * 14)
    # mm_token_type_ids: 2 exactly on the video placeholders (Qwen2.5-VL needs them for 3-D rope)
    assert torch.equal(out["mm_token_type_ids"][0] == 2, ids == processor.video_token_id)
    assert int(out["mm_token_type_ids"].sum()) == 2 * expected


def test_small_frames_are_upscaled_to_min_pixels(processor):
    # 28x28 = 784 px < min_pixels 3136: the HF rule scales up to 56x56 (4 tokens, not 1)
    out = processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[clip(2, 28, 28)], return_tensors="pt")
    assert out["video_grid_thw"].tolist() == [[1, 4, 4]]


def test_video_token_count_rejects_off_grid():
    with pytest.raises(ValueError, match="multiple of 28"):
        video_token_count(4, 200, 224)


def test_odd_frame_count_repeats_last_frame():
    video = clip(3, 56, 56)
    out = VideoFramesProcessor(min_pixels=3136, do_normalize=False, do_rescale=False)(video, return_tensors="np")
    assert out["video_grid_thw"].tolist() == [[2, 4, 4]]
    rows = out["pixel_values_videos"].reshape(32, 3, 2, 14, 14)
    # second temporal patch = frames (2, 2): both halves hold frame 2
    np.testing.assert_array_equal(rows[16:, :, 0], rows[16:, :, 1])
    np.testing.assert_array_equal(rows[16, :, 0], video[2, :14, :14].transpose(2, 0, 1))


# (processor kwargs, expected second_per_grid_ts = temporal_patch_size / fps)
SECONDS_CASES = [
    ({}, 1.0),  # default 2 fps (paper §4)
    ({"fps": 4.0}, 0.5),  # denser sampling: half a second per temporal patch
    ({"fps": 1.0}, 2.0),
    ({"video_metadata": [{"total_num_frames": 8, "fps": 2.0}]}, 1.0),  # rate from metadata
]


@pytest.mark.parametrize("kwargs, expected", SECONDS_CASES)
def test_second_per_grid_ts(processor, kwargs, expected):
    text = "<|vision_start|><|video_pad|><|vision_end|>Find it."
    out = processor(text=[text], videos=[clip(8, 56, 56)], return_tensors="pt", **kwargs)
    assert out["second_per_grid_ts"] == pytest.approx([expected])


def test_fps_in_chat_template_never_resamples(processor):
    # apply_chat_template turns fps into do_sample_frames=True; frames are already sampled, so all 8 stay.
    messages = [{"role": "user", "content": [{"type": "video", "video": clip(8, 56, 56)}, {"type": "text", "text": "x"}]}]
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, processor_kwargs={"fps": 2.0})
    assert out["video_grid_thw"].tolist() == [[4, 4, 4]]
    assert out["second_per_grid_ts"] == pytest.approx([1.0])


def test_video_processor_refuses_to_sample():
    with pytest.raises(NotImplementedError, match="already sampled"):
        VideoFramesProcessor()(clip(8, 56, 56), do_sample_frames=True)


def _datasets_row(video: np.ndarray) -> list:
    return video.tolist()


# (videos argument, expected number of videos, expected first shape)
FLATTEN_CASES = [
    (clip(4, 28, 28), 1, (4, 28, 28, 3)),  # one (T, H, W, 3) array
    ([clip(4, 28, 28), clip(2, 56, 28)], 2, (4, 28, 28, 3)),  # a batch of different sizes
    ([[clip(4, 28, 28)], [clip(2, 28, 28)]], 2, (4, 28, 28, 3)),  # apply_chat_template's per-conversation nesting
    ([Image.fromarray(f) for f in clip(3, 28, 28)], 1, (3, 28, 28, 3)),  # a list of PIL frames
    (_datasets_row(clip(2, 28, 28)), 1, (2, 28, 28, 3)),  # the nested lists a datasets.Dataset returns
    (np.stack([clip(2, 28, 28)] * 3), 3, (2, 28, 28, 3)),  # a 5-D batch
    (clip(2, 28, 28).transpose(0, 3, 1, 2), 1, (2, 28, 28, 3)),  # channels-first
]


@pytest.mark.parametrize("videos, n, shape", FLATTEN_CASES)
def test_flatten_videos(videos, n, shape):
    out = flatten_videos(videos)
    assert len(out) == n
    assert out[0].shape == shape and out[0].dtype == np.uint8


def test_flatten_videos_rejects_scalars():
    with pytest.raises(ValueError):
        flatten_videos([[1, 2, 3]])


# messages whose rendering must equal Qwen2.5-VL's own template
TEMPLATE_CASES = [
    [{"role": "user", "content": [{"type": "video", "video": "v"}, {"type": "text", "text": "Find the man."}]}],  # the task's prompt
    [
        {"role": "system", "content": "Be brief."},  # explicit system message: no default one
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video", "video": "v"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<time> 1 - 2 </time>"}]},
    ],
    [{"role": "user", "content": "plain"}, {"role": "assistant", "content": "answer"}],  # string contents
    [{"role": "user", "content": [{"type": "image", "image": "i"}, {"type": "video", "video": "v"}]}],  # image and video
]


@pytest.mark.parametrize("messages", TEMPLATE_CASES)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
@pytest.mark.parametrize("add_vision_id", [False, True])
def test_chat_template_matches_qwen(messages, add_generation_prompt, add_vision_id):
    kw = dict(conversations=[messages], add_generation_prompt=add_generation_prompt, add_vision_id=add_vision_id)
    ours, _ = render_jinja_template(chat_template=stvg_chat_template(), **kw)
    qwen, _ = render_jinja_template(chat_template=QWEN25VL_TEMPLATE, **kw)
    assert ours == qwen


def test_chat_template_reads_dataset_rows_as_text():
    # datasets.Dataset gives every block every key: text blocks carry 'video': None.
    from datasets import Dataset

    rows = Dataset.from_list(
        [{"messages": [
            {"role": "user", "content": [{"type": "video", "video": "v.mp4"}, {"type": "text", "text": "Find it."}]},
            {"role": "assistant", "content": [{"type": "text", "text": "ANSWER"}]},
        ]}]
    )
    messages = rows[0]["messages"]
    assert messages[0]["content"][1]["video"] is None
    ours, _ = render_jinja_template(conversations=[messages], chat_template=stvg_chat_template())
    qwen, _ = render_jinja_template(conversations=[messages], chat_template=QWEN25VL_TEMPLATE)
    assert ours[0].count("<|video_pad|>") == 1 and "Find it." in ours[0] and "ANSWER<|im_end|>" in ours[0]
    assert qwen[0].count("<|video_pad|>") == 3  # Qwen's template turns both text blocks into videos


def test_assistant_generation_mask(processor):
    messages = [
        {"role": "user", "content": [{"type": "video", "video": clip(2, 28, 28)}, {"type": "text", "text": "Find it."}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<time> 0 - 1 </time>"}]},
    ]
    out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt")
    mask = out["assistant_masks"][0].bool()
    assert processor.tokenizer.decode(out["input_ids"][0][mask]) == "<time> 0 - 1 </time><|im_end|>\n"


def test_processor_saves_as_stock_qwen(tmp_path):
    path = build_tiny_model(tmp_path)
    config = json.loads((path / "processor_config.json").read_text())
    assert config["processor_class"] == "Qwen2_5_VLProcessor"
    assert config["video_processor"]["video_processor_type"] == "Qwen2VLVideoProcessor"
    assert config["video_processor"]["size"] == {"shortest_edge": 3136, "longest_edge": 602112}
    assert json.loads((path / "tokenizer_config.json").read_text())["processor_class"] == "Qwen2_5_VLProcessor"
    loaded = load_processor(path, backend="frames")
    assert isinstance(loaded.video_processor, VideoFramesProcessor)
    assert loaded.chat_template == stvg_chat_template()


def test_load_processor_lowers_qwen_video_minimum(tmp_path):
    # a checkpoint with Qwen's video default (min 128*28*28) would upscale 336-px frames
    path = build_tiny_model(tmp_path)
    config = json.loads((path / "processor_config.json").read_text())
    config["video_processor"]["size"]["shortest_edge"] = 128 * 28 * 28
    (path / "processor_config.json").write_text(json.dumps(config))
    kept = load_processor(path, min_pixels=None)
    lowered = load_processor(path)
    assert kept.video_processor.target_size(4, 196, 336) == (252, 420)
    assert lowered.video_processor.target_size(4, 196, 336) == (196, 336)


def test_load_processor_chat_template_choice(tmp_path):
    path = build_tiny_model(tmp_path)
    (path / "chat_template.jinja").write_text(QWEN25VL_TEMPLATE)
    assert load_processor(path).chat_template == QWEN25VL_TEMPLATE  # a checkpoint keeps its own
    assert load_processor(path, chat_template="stvg").chat_template == stvg_chat_template()


# (status the monkeypatched import reports, expected check_torchvision outcome)
TORCHVISION_CASES = [
    ("missing", False),  # no torchvision: use our processor
    ("ok", True),  # working torchvision: use the HF processor
    ("broken", BrokenTorchvisionError),  # CUDA wheel beside CPU torch: clear error
]


@pytest.mark.parametrize("status, expected", TORCHVISION_CASES)
def test_check_torchvision(monkeypatch, status, expected):
    monkeypatch.setattr(proc_mod, "_torchvision_spec", lambda: None if status == "missing" else object())

    def fake_import() -> None:
        if status == "broken":
            raise RuntimeError("operator torchvision::nms does not exist")

    monkeypatch.setattr(proc_mod, "_import_torchvision", fake_import)
    if expected is BrokenTorchvisionError:
        with pytest.raises(BrokenTorchvisionError, match="pip uninstall torchvision") as info:
            check_torchvision()
        assert "torchvision::nms" in str(info.value) and "peft" in str(info.value)
    else:
        assert check_torchvision() is expected


def test_stock_processor_rejects_custom_video_processor(processor):
    # The hurdle Qwen2_5_VLFramesProcessor works around (transformers 5.23 without torchvision).
    from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor

    with pytest.raises(AttributeError, match="_extra_content"):
        Qwen2_5_VLProcessor(processor.image_processor, processor.tokenizer, VideoFramesProcessor())


def test_checkpoint_in_qwen_release_layout_loads(tmp_path):
    # Qwen2.5-VL-7B-Instruct ships preprocessor_config.json (flat, min/max_pixels) and chat_template.json,
    # no processor_config.json and no video_preprocessor_config.json.
    path = build_tiny_model(tmp_path)
    (path / "processor_config.json").unlink()
    (path / "chat_template.jinja").unlink()
    (path / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor",
    }))
    (path / "chat_template.json").write_text(json.dumps({"chat_template": QWEN25VL_TEMPLATE}))
    loaded = load_processor(path)
    assert loaded.chat_template == QWEN25VL_TEMPLATE
    assert loaded.video_processor.size == {"shortest_edge": 3136, "longest_edge": 12845056}
    messages = [{"role": "user", "content": [{"type": "video", "video": clip(4, 196, 336)}, {"type": "text", "text": "x"}]}]
    out = loaded.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")
    assert out["video_grid_thw"].tolist() == [[2, 14, 24]]


def test_num_frames_is_refused(processor):
    with pytest.raises(ValueError, match="already sampled"):
        processor(text=["<|vision_start|><|video_pad|><|vision_end|>"], videos=[clip(4, 56, 56)], num_frames=2)
