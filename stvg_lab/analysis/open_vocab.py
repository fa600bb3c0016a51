"""Open-vocabulary grounding (paper Table 4): a toy split on the synthetic benchmark, and the real protocol.

Toy scale (:func:`make_open_vocab_split`): a synthetic dataset whose train and val splits never
show a held-out word (no target or distractor has it, no query names it) and whose test targets
are described with held-out words only, through
:func:`stvg_lab.data.synth.open_vocabulary_config`. ``held_out`` maps attributes (``size``,
``colour``, ``shape``, ``motion``) to words, e.g. ``{"colour": ["orange", "cyan"], "shape":
["diamond"]}``; "described with held-out words only" means: for every held-out attribute, each
test target's value is one of that attribute's held-out words (the other attributes are free,
and test distractors may take any word). Both properties are checked on the written files
(:func:`check_open_vocab_split`); a violation raises and the dataset is removed.

How a query names a word. Colours, shapes and sizes appear as themselves. Motions appear in
phrases (``stvg_lab.data.synth``): "moves left", "stays still", or for a crossing "crosses the
frame from right to left" — whose *destination* is the motion. So "left" held out forbids
"moves left" and "to left", while "from left to right" (motion ``right``) is allowed.

Real scale (:func:`cross_dataset_protocol`): the paper trains on VidSTG and tests on HCSTVG-v1.
It returns the training recipe and both sample lists; training and evaluation run with
``stvg_lab.train`` and :func:`stvg_lab.evaluate.evaluate_model` on a GPU machine.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from stvg_lab.data.sample import Sample
from stvg_lab.data.synth import ATTRIBUTES, SynthConfig, generate_synthetic, load_synthetic, open_vocabulary_config

logger = logging.getLogger(__name__)

# the phrase a query uses for a target moving in that direction (either event form)
_CROSS_TO = {"left": "left", "right": "right", "up": "top", "down": "bottom"}


def query_names(query: str, attribute: str, word: str) -> bool:
    """Whether ``query`` describes its target with ``word`` for ``attribute`` (module docstring)."""
    q = " ".join(query.lower().split())
    if attribute == "motion":
        if word == "still":
            return re.search(r"\bstays still\b", q) is not None
        return re.search(rf"\bmoves {re.escape(word)}\b", q) is not None or (
            word in _CROSS_TO and re.search(rf"\bto {_CROSS_TO[word]}\b", q) is not None
        )
    return re.search(rf"\b{re.escape(word)}\b", q) is not None


def _check_held_out(held_out: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    unknown = set(held_out) - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"held_out: unknown attribute(s) {sorted(unknown)}; use {list(ATTRIBUTES)}")
    out = {a: [str(w) for w in words] for a, words in held_out.items()}
    if not any(out.values()):
        raise ValueError("held_out names no word; give at least one, e.g. {'colour': ['orange']}")
    return out


@dataclass
class OpenVocabReport:
    """What :func:`check_open_vocab_split` verified: sample counts per split and held-out word counts in test."""

    counts: dict[str, int]
    test_words: dict[str, dict[str, int]] = field(default_factory=dict)


def check_open_vocab_split(root: str | Path, held_out: Mapping[str, Sequence[str]]) -> OpenVocabReport:
    """Verify the two open-vocabulary properties of the synthetic dataset at ``root``; raise ValueError if violated.

    * train and val: no query names a held-out word, and no object (target or distractor, per
      ``{split}_meta.json``) has a held-out attribute value;
    * test: every target's value of each held-out attribute is a held-out word, and the query
      names it.

    The error names the split, the sample id, the attribute and the word.
    """
    held = _check_held_out(held_out)
    counts, test_words = {}, {a: {w: 0 for w in words} for a, words in held.items()}
    for split in ("train", "val", "test"):
        samples = load_synthetic(root, split)
        counts[split] = len(samples)
        for s in samples:
            if split == "test":
                _check_test(s, held, test_words)
            else:
                _check_seen(s, split, held)
    return OpenVocabReport(counts, test_words)


def _check_seen(s: Sample, split: str, held: Mapping[str, list[str]]) -> None:
    objects = [("target", s.extras["attributes"])] + [(f"distractor {i}", d) for i, d in enumerate(s.extras.get("distractors", []))]
    for attribute, words in held.items():
        for word in words:
            if query_names(s.query, attribute, word):
                raise ValueError(f"{split} sample {s.id}: query {s.query!r} names held-out {attribute} {word!r}")
            for who, attrs in objects:
                if attrs.get(attribute) == word:
                    raise ValueError(f"{split} sample {s.id}: the {who} has held-out {attribute} {word!r}")


def _check_test(s: Sample, held: Mapping[str, list[str]], tally: dict[str, dict[str, int]]) -> None:
    attrs = s.extras["attributes"]
    for attribute, words in held.items():
        value = attrs.get(attribute)
        if value not in words:
            raise ValueError(f"test sample {s.id}: target {attribute} {value!r} is not a held-out word {words}")
        if not query_names(s.query, attribute, value):
            raise ValueError(f"test sample {s.id}: query {s.query!r} does not name the target's {attribute} {value!r}")
        tally[attribute][value] += 1


def make_open_vocab_split(
    out_dir: str | Path,
    held_out: Mapping[str, Sequence[str]],
    n_train: int,
    n_test: int,
    seed: int = 0,
    *,
    n_val: int = 0,
    base: SynthConfig | None = None,
    workers: int | None = None,
    progress: bool = False,
    overwrite: bool = False,
) -> Path:
    """Generate the toy open-vocabulary dataset (module docstring) at ``out_dir`` and verify it.

    Train/val videos never show a held-out word; test targets are described with held-out
    words only. The layout is :func:`stvg_lab.data.synth.generate_synthetic`'s (``dataset.json``
    records the per-split vocabularies). Raises ValueError, and removes the new folder, if the
    written data violates either property (:func:`check_open_vocab_split`).
    """
    held = _check_held_out(held_out)
    config = open_vocabulary_config(held, base)
    root = generate_synthetic(out_dir, n_train, n_val, n_test, seed, config, progress, workers=workers, overwrite=overwrite)
    try:
        report = check_open_vocab_split(root, held)
    except ValueError:
        shutil.rmtree(root, ignore_errors=True)
        raise
    logger.info("open-vocabulary split at %s: %s samples; held-out words in test: %s", root, report.counts, report.test_words)
    return root


@dataclass
class CrossDatasetProtocol:
    """The paper's Table 4 protocol: a recipe training on VidSTG, its training samples, the HC-STVG test samples."""

    recipe: Any  # stvg_lab.train.recipe.Recipe
    train_samples: list[Sample]
    test_samples: list[Sample]


def cross_dataset_protocol(
    vidstg_train_file: str | Path,
    vidor_dir: str | Path,
    hcstvg_test_file: str | Path,
    *,
    vidstg_video_dir: str | Path | None = None,
    hcstvg_video_dir: str | Path | None = None,
    hcstvg_version: int = 1,
    recipe: str | Path = "paper",
    **overrides: Any,
) -> CrossDatasetProtocol:
    """Train on VidSTG, test on HC-STVG (v1 in the paper): the recipe and sample lists, for a GPU machine.

    Loads the VidSTG training sentences (``load_vidstg(vidstg_train_file, vidor_dir,
    vidstg_video_dir)``) and the HC-STVG test file (``load_hcstvg(..., version=hcstvg_version)``),
    and returns ``recipe`` (a shipped name or YAML path) with ``dataset="vidstg"``, plus
    ``overrides``. When ``vidstg_train_file`` lies in the layout
    ``stvg_lab.train.dataset.load_samples`` reads (``<root>/annotations/train_annotations.json``)
    the recipe's ``data`` is set to ``<root>``, so ``run_sft``/``run_grpo`` find the same samples;
    otherwise set ``data`` yourself. Then: train (``stvg-lab train grpo``), and evaluate the
    checkpoint on ``test_samples`` with :func:`stvg_lab.evaluate.evaluate_model`; compare with
    ``paper_row("tab4", "STVG-o1")``. Nothing is trained here.
    """
    from stvg_lab.data import load_hcstvg, load_vidstg
    from stvg_lab.train.recipe import load_recipe

    vidstg_train_file = Path(vidstg_train_file)
    train = list(load_vidstg(vidstg_train_file, vidor_dir, video_dir=vidstg_video_dir))
    test = list(load_hcstvg(hcstvg_test_file, video_dir=hcstvg_video_dir, version=hcstvg_version))
    settings: dict[str, Any] = {"dataset": "vidstg", "train_split": "train"}
    if vidstg_train_file.name == "train_annotations.json" and vidstg_train_file.parent.name == "annotations":
        settings["data"] = str(vidstg_train_file.parent.parent)
    settings.update(overrides)
    rec = load_recipe(recipe, **settings)
    logger.info("open-vocabulary protocol: %d VidSTG training sentences, %d HC-STVG v%d test samples",
                len(train), len(test), hcstvg_version)
    return CrossDatasetProtocol(rec, train, test)
