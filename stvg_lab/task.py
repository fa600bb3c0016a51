"""One grounding task as the model meets it: a sample's clip, its prompt and its chat messages.

The single place where a :class:`~stvg_lab.data.sample.Sample` becomes model-facing text, so
inference (``stvg_lab.infer``) and training (``stvg_lab.train``) ask exactly the same question.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from stvg_lab.answer import AnswerFormat, build_prompt
from stvg_lab.data.sample import Sample
from stvg_lab.video import Clip


def prompt_text(sample: Sample, clip: Clip, fmt: "str | AnswerFormat | None" = None) -> str:
    """The instruction for ``sample`` given what the model sees of it (Eq. 1's text input)."""
    return build_prompt(sample.query, clip.prompt_spec(), fmt)


def video_messages(
    frames: "np.ndarray | None",
    prompt: str,
    answer: str | None = None,
    system: str | None = None,
) -> list[dict[str, Any]]:
    """Chat messages: optional system turn, a user turn ``[video, text]``, optional assistant turn.

    ``frames`` is the ``(T, H, W, 3)`` uint8 clip; pass None to leave the video out of the
    block (datasets attach frames later, outside Arrow, with ``with_transform``). Every block
    carries its ``type``: our chat template dispatches on it.
    """
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append(
        {"role": "user", "content": [{"type": "video", "video": frames}, {"type": "text", "text": prompt}]}
    )
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return messages
