"""Named parts of a Qwen2.5-VL: which parameter is the ViT, the merger, the LLM's attention, ...

Two uses, both about *where* a learned skill lives (bench/LEARNING.md round 5):

* ``freeze_parts``: the recipe's ``freeze`` list stops gradients into whole parts during SFT or
  GRPO (a part that holds a skill the new objective would overwrite);
* ``transplant``: copy some parts from another checkpoint of the same architecture, so a probe
  can ask which part a later training stage changed when a skill was lost.

The parts cover every parameter exactly once (``part_of`` raises on a name it does not know,
so a new transformers layout cannot silently fall into no part). Names are matched on
``named_parameters()`` of ``Qwen2_5_VLForConditionalGeneration`` in transformers 5
(``model.visual.*``, ``model.language_model.*``, ``lm_head``); a LoRA-wrapped model is not
supported (freeze before peft wraps it, as the trainers do).
"""

from __future__ import annotations

import re
from typing import Any, Iterable

# part -> pattern on the parameter name; checked in this order, the first match wins
_PATTERNS: dict[str, re.Pattern] = {
    "merger": re.compile(r"(^|\.)visual\.merger\."),
    "vit": re.compile(r"(^|\.)visual\."),  # patch embedding and blocks: everything of visual but the merger
    "embeddings": re.compile(r"(^|\.)(embed_tokens\.|lm_head\.)"),  # tied in the stand-in
    "attention": re.compile(r"(^|\.)language_model\.layers\.\d+\.self_attn\."),
    "mlp": re.compile(r"(^|\.)language_model\.layers\.\d+\.mlp\."),
    "norms": re.compile(r"(^|\.)language_model\.(layers\.\d+\.(input|post_attention)_layernorm|norm)\."),
}
PARTS: tuple[str, ...] = tuple(_PATTERNS)


def part_of(name: str) -> str:
    """The part (one of ``PARTS``) that the parameter called ``name`` belongs to."""
    for part, pattern in _PATTERNS.items():
        if pattern.search(name):
            return part
    raise ValueError(f"parameter {name!r} is in none of the parts {PARTS}; stvg_lab.model_parts needs a pattern for it")


def check_parts(parts: Iterable[str], field: str = "parts") -> list[str]:
    """``parts`` as a list, or a ValueError that names ``field`` and the unknown entries."""
    parts = list(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"{field}: unknown part(s) {unknown}; choose from {list(PARTS)}")
    return parts


def freeze_parts(model: Any, parts: Iterable[str]) -> int:
    """Stop gradients into every parameter of ``parts``; returns how many values were frozen."""
    parts = set(check_parts(parts))
    frozen = 0
    for name, param in model.named_parameters():
        if part_of(name) in parts:
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def transplant(model: Any, donor: Any, parts: Iterable[str]) -> int:
    """Copy the parameters of ``parts`` from ``donor`` into ``model`` in place; returns the values copied.

    Both must have the same architecture: a name missing from the donor or a shape that differs
    raises, naming the parameter.
    """
    import torch

    parts = set(check_parts(parts))
    theirs = dict(donor.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, param in model.named_parameters():
            if part_of(name) not in parts:
                continue
            if name not in theirs or theirs[name].shape != param.shape:
                got = tuple(theirs[name].shape) if name in theirs else "missing"
                raise ValueError(f"transplant: the donor's {name} is {got}, the model's {tuple(param.shape)}")
            param.copy_(theirs[name])
            copied += param.numel()
    return copied
