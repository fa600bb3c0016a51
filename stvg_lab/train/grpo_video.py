"""GRPO on video with stock TRL 1.16.0: the policy that is optimised is the one that saw the video.

TRL 1.16's ``GRPOTrainer`` passes everything ``processor.apply_chat_template`` returns to ``generate``,
so sampling sees the video. The three later forwards get their multimodal inputs only from a dataset
``image``/``images`` column. Those forwards are the old-policy log-probs, the reference log-probs
and the loss. A video inside the prompt messages is dropped before them, so they embed each
``<|video_pad|>`` as a text token and use 1-D rope positions. The ratio ``r_i(θ)`` and the KL term
of Eq. 12 are then those of a model that never saw the video. Nothing fails and no warning is
given. ``docs/trl_video_notes.md`` traces this with TRL line numbers.

:class:`VideoGRPOTrainer` is the smallest subclass that fixes this without forking the trainer.
It overrides four methods:

* ``_tokenize_prompts``: keeps the processor's video tensors, split into per-sample lists, for the
  current generation batch. It also adds ``mm_token_type_ids`` when the processor did not return
  them, because ``generate`` needs them for 3-D rope.
* ``_generate_and_score_completions``: puts those per-sample lists into the batch it returns.
  TRL's ``shuffle_sequence_dict`` and ``split_tensor_dict`` permute and slice lists the same way
  as tensors, so each sample's video stays with its row.
* ``compute_loss``: makes the current batch's video lists visible to the loss forward.
* ``_get_per_token_logps_and_entropies``: when a video is present, runs TRL's chunked forward with
  ``pixel_values_videos``, ``video_grid_thw``, ``second_per_grid_ts`` and ``mm_token_type_ids``.
  With those, Qwen2.5-VL computes the same 3-D rope positions as during generation, left padding
  included.

With ``greedy_in_group=True`` (not the paper; off by default) it also overrides
``_generate_single_turn``: one completion of each group is the policy's greedy answer, the one the
evaluation scores, and the other ``num_generations - 1`` are sampled as usual. Eq. 11 then ranks the
samples against the answer the policy would give, so a sample that beats it is pushed up and a
greedy answer below its group is pushed down (the greedy baseline of self-critical training).

It also does three things at construction:

* It stops generation from sampling ``<|video_pad|>``, the way TRL already stops ``<|image_pad|>``.
  A sampled placeholder token would not match the video features in the loss forward.
* It gives TRL's rebuilt reference model the policy's per-instance ``get_rope_index``, i.e.
  ``stvg_lab.model.use_qwen_text_positions``. Without it the KL term is non-zero from step 0.
* It refuses an in-memory model with ``beta > 0`` and says how to fix it.

Scope: videos in the prompt messages with the transformers generation backend. Images together
with videos, vLLM, tools, environments and ``rollout_func`` raise ``NotImplementedError``.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import trl
from accelerate.utils import is_peft_model
from transformers import GenerationConfig
from trl import GRPOTrainer

TRL_VERSION = "1.16.0"
"""The TRL release whose private ``GRPOTrainer`` methods this module overrides (checked at construction)."""

VIDEO_FIELDS = ("pixel_values_videos", "video_grid_thw", "second_per_grid_ts")
"""Processor outputs that carry the video. Per sample, their shapes are ``(patches_i, C*tp*p*p)``,
``(videos_i, 3)`` and ``(videos_i,)``."""

MM_TOKEN_TYPE_VIDEO = 2  # Qwen2.5-VL's token type for video placeholders (0 text, 1 image)


def check_trl_version(version: str | None = None) -> None:
    """Raise unless ``version`` (default: the installed ``trl.__version__``) is :data:`TRL_VERSION`.

    :class:`VideoGRPOTrainer` overrides private methods whose signatures and call order change
    between TRL releases. On another version it could run and still optimise the wrong policy.
    """
    version = trl.__version__ if version is None else version
    if version != TRL_VERSION:
        raise RuntimeError(
            f"stvg_lab.train.grpo_video.VideoGRPOTrainer was written against trl=={TRL_VERSION}, but trl=={version} "
            f"is installed. Install trl=={TRL_VERSION} (pinned in pyproject.toml), or re-check the overridden methods "
            "against the new grpo_trainer.py using docs/trl_video_notes.md and rerun tests/test_grpo_video.py."
        )


def _as_tensor(value: Any) -> torch.Tensor:
    """Convert a processor output field the way TRL's ``_generate_single_turn`` does before ``generate``.

    Generation and the later forwards must use the same dtypes. For example, ``second_per_grid_ts``
    arrives as a list of Python floats and becomes float64 in ``generate``. Rope positions are
    ``(t * tokens_per_second * second_per_grid_ts).long()``, so a different float width could round
    one position differently.
    """
    return value if isinstance(value, torch.Tensor) else torch.tensor(np.array(value))


def split_video_fields(
    fields: Mapping[str, Any],
    prompt_ids: Sequence[Sequence[int]],
    video_token_id: int,
    spatial_merge_size: int,
) -> dict[str, list[torch.Tensor]]:
    """Split batch-flat video tensors into one entry per prompt, in prompt order.

    The processor concatenates all videos of a batch. ``pixel_values_videos`` is
    ``(sum_i patches_i, C*tp*p*p)``, ``video_grid_thw`` is ``(num_videos, 3)`` and
    ``second_per_grid_ts`` is ``(num_videos,)``. A video with grid ``(t, h, w)`` has ``t*h*w`` patch
    rows and ``t*h*w // spatial_merge_size**2`` placeholder tokens. So prompt ``i`` owns the next
    videos whose token counts add up to the number of ``video_token_id`` in ``prompt_ids[i]``. A
    prompt may hold zero, one or several videos.

    Raises:
        ValueError: the placeholder counts do not match the grids. The message names the prompt row.
    """
    grids = _as_tensor(fields["video_grid_thw"]).long()  # (num_videos, 3)
    pixels = _as_tensor(fields["pixel_values_videos"])  # (sum patches, C*tp*p*p)
    seconds = fields.get("second_per_grid_ts")
    seconds = _as_tensor(seconds) if seconds is not None else torch.ones(len(grids), dtype=torch.float64)
    patches_per_video = grids.prod(dim=-1)  # (num_videos,)
    tokens_per_video = (patches_per_video // spatial_merge_size**2).tolist()
    out: dict[str, list[torch.Tensor]] = {name: [] for name in VIDEO_FIELDS}
    video, row = 0, 0
    for i, ids in enumerate(prompt_ids):
        wanted = sum(1 for t in ids if t == video_token_id)
        first = video
        while wanted > 0 and video < len(grids):
            wanted -= tokens_per_video[video]
            video += 1
        if wanted != 0:
            raise ValueError(
                f"prompt row {i}: its {sum(1 for t in ids if t == video_token_id)} <|video_pad|> tokens do not match "
                f"the video grids from the processor (video_grid_thw={grids.tolist()}, spatial_merge_size="
                f"{spatial_merge_size}). Check that the processor and the model config agree on merge size."
            )
        rows = int(patches_per_video[first:video].sum())
        out["pixel_values_videos"].append(pixels[row : row + rows])
        out["video_grid_thw"].append(grids[first:video])
        out["second_per_grid_ts"].append(seconds[first:video])
        row += rows
    if video != len(grids) or row != len(pixels):
        raise ValueError(
            f"the processor returned {len(grids)} videos / {len(pixels)} patch rows, but the prompts' <|video_pad|> "
            f"tokens account for {video} videos / {row} rows. A video is missing its placeholder in the chat template."
        )
    return out


def merge_video_fields(
    per_sample: Mapping[str, Sequence[torch.Tensor]], rows: Sequence[int], device: torch.device | str
) -> dict[str, torch.Tensor]:
    """Concatenate ``rows`` (e.g. ``range(start, end)``) of per-sample video lists into the model's batch-flat layout.

    Qwen2.5-VL reads the grids in row order, both to scatter video features into the placeholder
    tokens and to assign rope positions. Concatenation in row order is therefore the only layout
    it accepts.
    """
    return {name: torch.cat([per_sample[name][i] for i in rows], dim=0).to(device) for name in VIDEO_FIELDS}


def select_rows(
    fields: Mapping[str, Any], per_sample: Mapping[str, Sequence[torch.Tensor]], rows: Sequence[int]
) -> dict[str, Any]:
    """``fields`` (what ``_tokenize_prompts`` returns besides the prompt ids) for the prompt rows ``rows`` only.

    The video fields are batch-flat, so they are rebuilt from ``per_sample`` (:func:`split_video_fields`)
    by :func:`merge_video_fields`. Per-token fields (a list of lists, e.g. ``mm_token_type_ids``) keep the
    chosen rows.

    Raises:
        NotImplementedError: a field of another kind, which cannot be split by row here.
    """
    video = merge_video_fields(per_sample, rows, "cpu")  # the processor's tensors, still on the CPU
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in VIDEO_FIELDS:
            out[name] = video[name]
        elif isinstance(value, list) and all(isinstance(v, list) for v in value):
            out[name] = [value[i] for i in rows]
        else:
            raise NotImplementedError(f"VideoGRPOTrainer: cannot select prompt rows of the processor field {name!r}")
    return out


def greedy_rows(local_rows: int, num_generations: int, process_index: int) -> list[int]:
    """The local rows of a generation batch that get the greedy answer: one per group.

    TRL's ``RepeatSampler`` puts a group's ``num_generations`` completions next to each other in the
    global batch, and TRL itself treats process ``k``'s rows as global rows ``k * local_rows + i``
    when it gathers rewards and slices advantages back. A group starts at a global multiple of
    ``num_generations``; its first row is the greedy one, on whichever process it lies.
    """
    offset = process_index * local_rows
    return [i for i in range(local_rows) if (offset + i) % num_generations == 0]


def video_token_type_ids(input_ids: torch.Tensor, video_token_id: int) -> torch.Tensor:
    """``mm_token_type_ids`` for a video-only batch: 2 where ``input_ids == video_token_id``, else 0.

    ``input_ids`` is ``(B, L)`` and so is the result. Built from the token ids rather than taken from
    the processor, so it stays valid whatever padding TRL applies. Qwen2.5-VL computes 3-D rope
    positions only when this is given. Without it, the positions are 1-D text positions.
    """
    return (input_ids == video_token_id).long() * MM_TOKEN_TYPE_VIDEO


def _check_reference_model_source(arguments: Mapping[str, Any]) -> None:
    """Fail early, with the fix, where TRL 1.16 would fail late with an empty repo id.

    With ``beta > 0``, no PEFT and a model instance, TRL builds the reference model with
    ``from_pretrained(model.config._name_or_path)`` (grpo_trainer.py:1003). A model built in memory
    has an empty path, and TRL then fails with "Repo id must use alphanumeric chars". Nothing can
    catch a path that is set but holds other weights than the instance, for example a model further
    trained in this process. The reference is then the checkpoint on disk.
    """
    model, config = arguments["model"], arguments.get("args")
    if config is None or config.beta == 0.0 or isinstance(model, str):
        return
    if is_peft_model(model) or arguments.get("peft_config") is not None:
        return  # TRL takes the reference from the base model with the adapter disabled
    if not getattr(model.config, "_name_or_path", ""):
        raise ValueError(
            "VideoGRPOTrainer: beta > 0 needs a reference model, which TRL 1.16 loads from "
            "model.config._name_or_path, but this model was built in memory and has no path. Save it first "
            "(model.save_pretrained(path)) and pass Qwen2_5_VLForConditionalGeneration.from_pretrained(path), "
            "or set beta=0.0."
        )


class VideoGRPOTrainer(GRPOTrainer):
    """TRL 1.16.0 ``GRPOTrainer`` whose old, reference and loss forwards see each sample's video (Eq. 12).

    Construct it exactly like ``GRPOTrainer``. The dataset's ``prompt`` holds chat messages with
    ``{"type": "video", "video": ...}`` blocks that the processor's ``apply_chat_template``
    understands. Do not add an ``images`` column. On CPU, set ``bf16=False``, turn off checkpointing
    and set the learning rate explicitly. GRPOConfig defaults to ``bf16=True``, checkpointing on and
    ``learning_rate=1e-6``. With transformers 5.23, turn checkpointing off with
    ``activation_checkpointing=False``: ``gradient_checkpointing=False`` works but warns. With
    ``beta > 0``, TRL rebuilds the reference model from ``model.config._name_or_path``. An in-memory
    model must therefore be saved and reloaded first. This class checks for that at construction.
    """

    def __init__(self, *args: Any, greedy_in_group: bool = False, **kwargs: Any) -> None:
        check_trl_version()
        arguments = inspect.signature(GRPOTrainer.__init__).bind(self, *args, **kwargs).arguments
        _check_reference_model_source(arguments)
        config = arguments.get("args")
        if greedy_in_group and config is not None and config.use_vllm:
            # refused before TRL starts vLLM: its sampler returns no greedy answer and no video (see _tokenize_prompts)
            raise NotImplementedError("VideoGRPOTrainer: greedy_in_group needs the transformers generation path, not vLLM.")
        super().__init__(*args, **kwargs)
        # Per-sample video lists of the batch being scored or optimised (see _video_context). None
        # means that no video is present and that TRL's own forward runs unchanged.
        self._video_inputs: dict[str, list[torch.Tensor]] | None = None
        self.greedy_in_group = greedy_in_group
        self._suppress_video_token()
        self._share_rope_index_with_reference()

    def _suppress_video_token(self) -> None:
        """Add ``<|video_pad|>`` to the tokens generation may not sample.

        TRL already does this for the image token (grpo_trainer.py:1168-1170). A sampled placeholder
        would make the completion's video-token count differ from the video features, and the loss
        forward would fail. A tiny random policy samples one about once per 150k tokens.
        """
        if self.use_vllm or self._video_pad_token_id is None:
            return
        suppress = list(self.generation_config.suppress_tokens or [])
        if self._video_pad_token_id not in suppress:
            suppress.append(self._video_pad_token_id)
        self.generation_config.suppress_tokens = suppress
        self.generation_kwargs["suppress_tokens"] = suppress

    def _share_rope_index_with_reference(self) -> None:
        """Give the reference model the policy's per-instance ``get_rope_index``, if it has one.

        ``stvg_lab.model.load_model`` binds Qwen's rule for text positions after a video onto the
        model instance (``use_qwen_text_positions``). TRL rebuilds the reference model with a plain
        ``from_pretrained`` (grpo_trainer.py:1003), which gets transformers' rule instead. Every
        completion token would then sit at a different position under the two models, and the KL
        term of Eq. 12 would be non-zero from step 0.
        """
        if self.ref_model is None:
            return
        policy = getattr(self.accelerator.unwrap_model(self.model), "model", None)
        override = vars(policy).get("get_rope_index") if policy is not None else None
        if override is None:
            return
        reference = self.accelerator.unwrap_model(self.ref_model).model
        reference.get_rope_index = types.MethodType(override.__func__, reference)

    @contextmanager
    def _video_context(self, video: dict[str, list[torch.Tensor]] | None) -> Iterator[None]:
        """Expose ``video`` to ``_get_per_token_logps_and_entropies`` for the duration of one TRL call.

        TRL calls that method with a fixed keyword set that has no video fields. The fields reach it
        through this attribute instead, set only around the call that owns the batch.
        """
        previous, self._video_inputs = self._video_inputs, video
        try:
            yield
        finally:
            self._video_inputs = previous

    def _tokenize_prompts(self, prompts: list) -> tuple[list, Any, dict]:
        prompt_ids, images, multimodal_fields = super()._tokenize_prompts(prompts)
        if "pixel_values_videos" not in multimodal_fields:
            return prompt_ids, images, multimodal_fields
        if images is not None or "pixel_values" in multimodal_fields:
            raise NotImplementedError(
                "VideoGRPOTrainer: prompts with both images and videos are not supported. Put only video blocks "
                "in the prompt messages."
            )
        if self.use_vllm or self.tools or self.rollout_func is not None or self.environment_factories is not None:
            raise NotImplementedError(
                "VideoGRPOTrainer supports video prompts only with the transformers generation backend and no tools, "
                "environments or rollout_func. In TRL 1.16 the vLLM path receives images only, so it would sample "
                "without the video."
            )
        if self._video_inputs is not None:
            raise RuntimeError("VideoGRPOTrainer: a new batch was tokenized while the previous one is still in use.")
        self._video_inputs = split_video_fields(
            multimodal_fields,
            prompt_ids,
            video_token_id=self._video_pad_token_id,
            spatial_merge_size=self.model.config.vision_config.spatial_merge_size,
        )
        if "mm_token_type_ids" not in multimodal_fields:
            # TRL left-pads a list-of-lists field like input_ids (grpo_trainer.py:1830-1841). generate needs
            # this field to compute the same 3-D rope positions as the later forwards.
            multimodal_fields["mm_token_type_ids"] = [
                [MM_TOKEN_TYPE_VIDEO if t == self._video_pad_token_id else 0 for t in ids] for ids in prompt_ids
            ]
        return prompt_ids, images, multimodal_fields

    def _generate_single_turn(
        self, prompt_ids: list, images: Any, multimodal_fields: dict, num_generations: int, has_tool_images: bool = False
    ) -> tuple[list[list[int]], Any]:
        completion_ids, logprobs = super()._generate_single_turn(
            prompt_ids, images, multimodal_fields, num_generations, has_tool_images
        )
        if not self.greedy_in_group:
            return completion_ids, logprobs
        if images is not None or self._video_inputs is None:
            raise NotImplementedError("VideoGRPOTrainer: greedy_in_group is implemented for video prompts only.")
        rows = greedy_rows(len(prompt_ids), num_generations, self.accelerator.process_index)
        if rows:
            fields = select_rows(multimodal_fields, self._video_inputs, rows)
            with self._greedy_generation():
                greedy, _ = super()._generate_single_turn([prompt_ids[i] for i in rows], None, fields, 1)
            for i, ids in zip(rows, greedy, strict=True):
                completion_ids[i] = ids
        # logprobs is None on this path (TRL computes the old log-probs with a forward)
        return completion_ids, logprobs

    @contextmanager
    def _greedy_generation(self) -> Iterator[None]:
        """TRL's generation settings with sampling off, for the duration of one ``generate``."""
        config, kwargs = self.generation_config, self.generation_kwargs
        greedy = {**kwargs, "do_sample": False, "temperature": None, "top_p": None, "top_k": None, "min_p": None}
        self.generation_config, self.generation_kwargs = GenerationConfig(**greedy, disable_compile=True), greedy
        try:
            yield
        finally:
            self.generation_config, self.generation_kwargs = config, kwargs

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        # _tokenize_prompts (called inside) fills self._video_inputs. The old and reference forwards
        # further down the same call read it. The context then clears it, even when generation fails.
        with self._video_context(None):
            output = super()._generate_and_score_completions(inputs)
            video = self._video_inputs
        if video is not None:
            # One list entry per row of prompt_ids / completion_ids, B = len(inputs). These are lists, so
            # _prepare_inputs' shuffle_sequence_dict and split_tensor_dict move them with their rows.
            output.update(video)
        return output

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | None = None,
    ) -> torch.Tensor:
        video = {name: inputs[name] for name in VIDEO_FIELDS} if "pixel_values_videos" in inputs else None
        with self._video_context(video):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)

    def _get_per_token_logps_and_entropies(
        self,
        model: torch.nn.Module,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        logits_to_keep: int,
        batch_size: int | None = None,
        compute_entropy: bool = False,
        compute_aux_loss: bool = False,
        **image_kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Per-token log-probs ``(B, logits_to_keep)``, and optionally entropies and the MoE aux loss.

        Without a video, this is TRL's method. With a video, this is the same chunked forward as TRL's
        (grpo_trainer.py:1419-1506) with the video fields added. ``input_ids`` is ``(B, P + C)``: the
        prompt is left-padded and the completion right-padded. Row ``i`` uses video entry ``i``.
        """
        video = self._video_inputs
        if video is None:
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss,
                **image_kwargs,
            )
        if any(value is not None for value in image_kwargs.values()):
            raise NotImplementedError("VideoGRPOTrainer: image inputs together with videos are not supported.")
        if len(video["video_grid_thw"]) != input_ids.size(0):
            raise RuntimeError(
                f"VideoGRPOTrainer: {len(video['video_grid_thw'])} per-sample videos for {input_ids.size(0)} rows. "
                "The video lists and the token rows are misaligned."
            )
        batch_size = batch_size or input_ids.size(0)
        all_logps, all_entropies, all_aux_losses = [], [], []
        for start in range(0, input_ids.size(0), batch_size):
            end = min(start + batch_size, input_ids.size(0))
            input_ids_batch = input_ids[start:end]  # (b, P + C)
            attention_mask_batch = attention_mask[start:end]  # (b, P + C)
            model_inputs = {"input_ids": input_ids_batch, "attention_mask": attention_mask_batch}
            video_batch = merge_video_fields(video, range(start, end), input_ids.device)
            # A chunk of text-only rows gets no video inputs: the vision tower cannot take zero patches.
            if len(video_batch["video_grid_thw"]) > 0:
                model_inputs["mm_token_type_ids"] = video_token_type_ids(input_ids_batch, self._video_pad_token_id)
                model_inputs.update(video_batch)
            if compute_aux_loss:
                model_inputs["output_router_logits"] = True
            # Only the completion tokens are scored, as in TRL.
            labels = input_ids_batch.masked_fill(attention_mask_batch == 0, -100)
            labels[:, :-logits_to_keep] = -100
            with self.accelerator.autocast():
                outputs = model(**model_inputs, labels=labels, fused_lm_head=True)
            all_logps.append(outputs.log_probs[:, -logits_to_keep:])  # (b, C)
            if compute_entropy:
                all_entropies.append(outputs.entropy[:, -logits_to_keep:])
            if compute_aux_loss:
                all_aux_losses.append(outputs.aux_loss)
        logps = torch.cat(all_logps, dim=0)
        entropies = torch.cat(all_entropies, dim=0) if compute_entropy else None
        aux_loss = torch.stack(all_aux_losses).mean() if compute_aux_loss else None
        return logps, entropies, aux_loss
