"""stvg_lab.model_parts: every parameter of a Qwen2.5-VL in exactly one named part; freezing and transplanting parts."""

from __future__ import annotations

import pytest
import torch

from stvg_lab.model import build_tiny_model, load_model
from stvg_lab.model_parts import PARTS, check_parts, freeze_parts, part_of, transplant

# (parameter name as transformers 5 names it in Qwen2_5_VLForConditionalGeneration, part)
PART_CASES = [
    ("model.visual.patch_embed.proj.weight", "vit"),
    ("model.visual.blocks.0.attn.qkv.weight", "vit"),  # the ViT's own attention is not the LLM's
    ("model.visual.merger.mlp.0.weight", "merger"),  # merger before vit: both live under visual.
    ("model.visual.merger.ln_q.weight", "merger"),
    ("model.language_model.embed_tokens.weight", "embeddings"),
    ("lm_head.weight", "embeddings"),  # untied in the 7B; the same part as the input embedding
    ("model.language_model.layers.0.self_attn.q_proj.bias", "attention"),
    ("model.language_model.layers.27.self_attn.o_proj.weight", "attention"),
    ("model.language_model.layers.3.mlp.down_proj.weight", "mlp"),
    ("model.language_model.layers.3.input_layernorm.weight", "norms"),
    ("model.language_model.layers.3.post_attention_layernorm.weight", "norms"),
    ("model.language_model.norm.weight", "norms"),  # the final norm
]


@pytest.mark.parametrize("name, part", PART_CASES)
def test_part_of(name, part):
    assert part_of(name) == part


def test_unknown_parameter_names_no_part():
    with pytest.raises(ValueError, match=r"model\.new_head\.weight.*none of the parts"):
        part_of("model.new_head.weight")


def test_check_parts_names_the_field():
    assert check_parts(("vit", "merger")) == ["vit", "merger"]
    with pytest.raises(ValueError, match=r"freeze: unknown part\(s\) \['vision'\]"):
        check_parts(["vision", "mlp"], "freeze")


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny"))


def test_every_part_of_the_stand_in_is_non_empty(tiny_path):
    model, _ = load_model(tiny_path)
    sizes = {p: 0 for p in PARTS}
    for name, param in model.named_parameters():
        sizes[part_of(name)] += param.numel()
    assert all(sizes.values()), sizes
    assert sum(sizes.values()) == sum(p.numel() for p in model.parameters())


def test_freeze_parts_stops_exactly_those_parts(tiny_path):
    model, _ = load_model(tiny_path)
    frozen = freeze_parts(model, ["merger", "attention"])
    off = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert off and all(part_of(n) in ("merger", "attention") for n in off)
    assert frozen == sum(p.numel() for n, p in model.named_parameters() if part_of(n) in ("merger", "attention"))
    assert freeze_parts(model, []) == 0


def test_transplant_copies_only_the_named_parts(tiny_path, tmp_path):
    model, _ = load_model(tiny_path)
    donor, _ = load_model(build_tiny_model(tmp_path / "other", seed=1))
    copied = transplant(model, donor, ["mlp"])
    theirs = dict(donor.named_parameters())
    mine = dict(load_model(tiny_path)[0].named_parameters())
    assert copied > 0
    for name, param in model.named_parameters():
        source = theirs if part_of(name) == "mlp" else mine
        assert torch.equal(param, source[name]), name


def test_transplant_from_another_size_names_the_parameter(tiny_path, tmp_path):
    model, _ = load_model(tiny_path)
    donor, _ = load_model(build_tiny_model(tmp_path / "wide", intermediate_size=96))
    with pytest.raises(ValueError, match=r"transplant: the donor's model\.language_model\.layers\.0\.mlp\.\S+ is \("):
        transplant(model, donor, ["mlp"])
