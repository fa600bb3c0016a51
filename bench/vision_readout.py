"""Is the object's box in the stand-in's video tokens? A linear readout, layer by layer, against the model's own boxes.

    OMP_NUM_THREADS=1 .venv/bin/python bench/vision_readout.py --checkpoint CK --data data/synthetic_spread \
        --predictions <a grpo_sweep run>/eval/predictions.jsonl          # ~30 s on one core with --n-train 2000 --answer
    OMP_NUM_THREADS=1 .venv/bin/python bench/vision_readout.py --checkpoint CK --data data/synthetic --n-train 2000 --attributes

Only one-object clips (``n_distractors == 0``): the box to read is then the only object's, so a
readout needs no sentence. For each sampled frame ``k`` of a clip's ground-truth span, the features
are the hidden states of the video tokens of ``k``'s temporal group (the merger's 2-frame patches:
``cells x hidden``, flattened) plus ``k``'s parity in the group, at each layer of the language model
(0 = the merged vision tokens as they enter it), from one forward of the clip with its own prompt
(and its SFT target, which the causal model's video states do not see).
A ridge regression (closed form) maps them to the box in frame units; it is fitted on the train
split's clips and scored by mean IoU per frame on the test split's. The model's own greedy pred
boxes on the same test frames (``--predictions``: ``evaluate_model``'s predictions.jsonl) say how
much of what the tokens hold its answers read. ``--answer`` also reads the box from the answer's own
hidden states, teacher-forced on the SFT target, at the position that writes each think and pred box
(:func:`readout_rows`): where the place is lost, between the video tokens and that position, or
between that position and the digits. ``--attributes`` reads the object's size, colour, shape and
motion (a ridge classifier, :func:`attribute_table`) from the one video token whose cell holds its box
centre: what the tokens keep of what the sentence names. bench/LEARNING.md rounds 13 and 16 have what it found.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

LAMBDAS = (0.1, 1.0, 10.0, 100.0)


def one_object(samples: Sequence[Any]) -> list[Any]:
    """The clips with no distractor (``load_synthetic``'s ``extras["n_distractors"]``)."""
    return [s for s in samples if s.extras.get("n_distractors") == 0]


Rows = tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]  # X (layers + 1, F, D), Y (F, 4) in frame units, (sample id, frame) per row


def readout_rows(model: Any, processor: Any, samples: Sequence[Any], fmt: str = "compact") -> dict[str, Rows]:
    """Per-layer features and true boxes of every ground-truth frame of ``samples``, from one forward per clip.

    The forward is teacher-forced on the clip's SFT target (:func:`stvg_lab.train.dataset.sft_target`)
    after its own prompt. The language model is causal, so the video tokens' states are those of the
    prompt alone. Returns, keyed by where the features are read:

    * ``"video"``: the hidden states of the video tokens of frame ``k``'s temporal group (``cells x
      hidden``, flattened) plus ``k``'s parity in the group and a 1: ``D = cells * hidden + 2``;
    * ``"think"`` / ``"pred"`` (the lists ``fmt`` writes): the answer's state at the token holding the
      ``[`` of frame ``k``'s box, the one that predicts its first digit (earlier boxes of the list are
      in its context), plus a 1: ``D = hidden + 1``.

    ``Y`` is the true box (not the grid-snapped think target) in every case, and the rows of every key
    are the same ``(sample id, frame)`` pairs in the same order.
    """
    import torch

    from stvg_lab.answer import get_format
    from stvg_lab.model import build_model_inputs
    from stvg_lab.task import prompt_text
    from stvg_lab.train.dataset import sft_target
    from stvg_lab.video import load_clip, tube_to_model

    tubes = ("think", "pred") if get_format(fmt).think else ("pred",)
    xs: dict[str, list[np.ndarray]] = {key: [] for key in ("video", *tubes)}
    ys, keys = [], []
    for s in samples:
        clip = load_clip(s)
        answer = sft_target(s, clip, fmt)
        inputs = build_model_inputs(processor, clip.frames, prompt_text(s, clip, fmt), answer)
        with torch.no_grad():
            hidden = model(**{k: v for k, v in inputs.items() if k != "labels"}, output_hidden_states=True).hidden_states  # (layers + 1) x (1, L, hidden)
        n = len(hidden)
        t, h, w = inputs["video_grid_thw"][0].tolist()
        where = inputs["input_ids"][0] == model.config.video_token_id  # (L,): t * h/2 * w/2 video tokens, in (t, row, col) order
        video = torch.stack([x[0, where] for x in hidden]).reshape(n, t, (h // 2) * (w // 2), -1)  # (layers+1, T, cells, hidden)
        first = int((inputs["labels"][0] != -100).nonzero()[0])  # the answer's first token (right padding)
        offsets = processor.tokenizer(answer + "<|im_end|>\n", add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        (_, _), boxes = tube_to_model(s, clip.frame_numbers, clip.size)
        width, height = clip.size
        frames = sorted(boxes)  # the span's frames: one box each, in this order in every list
        for k in frames:
            flat = video[:, k // 2].reshape(n, -1).numpy()
            xs["video"].append(np.concatenate([flat, np.tile([k % 2, 1.0], (n, 1))], axis=1))
            ys.append(np.asarray(boxes[k]) / [width, height, width, height])
            keys.append((s.id, int(k)))
        for tube in tubes:
            lo, hi = answer.index(f"<{tube}_bbox>"), answer.index(f"</{tube}_bbox>")
            brackets = [i for i in range(lo, hi) if answer[i] == "["]
            if len(brackets) != len(frames):
                raise RuntimeError(f"{s.id}: the SFT target's <{tube}_bbox> has {len(brackets)} boxes for {len(frames)} span frames")
            for at in brackets:
                tok = next(j for j, (a, b) in enumerate(offsets) if a <= at < b)
                state = np.stack([x[0, first + tok].numpy() for x in hidden])  # (layers + 1, hidden)
                xs[tube].append(np.concatenate([state, np.ones((n, 1))], axis=1))
    y = np.asarray(ys, dtype=np.float64)
    return {key: (np.stack(rows, axis=1), y, keys) for key, rows in xs.items()}


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """``argmin_W |xW - y|^2 + lam |W|^2``: ``(F, D), (F, 4) -> (D, 4)``."""
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def mean_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean IoU of ``(F, 4)`` box pairs (any unit; a box with x2 < x1 has no area)."""
    from stvg_lab.geometry import box_iou

    return float(np.mean(box_iou(pred, gt))) if len(gt) else float("nan")


def own_boxes(predictions: Path, keys: Sequence[tuple[str, int]], gt: np.ndarray, sizes: dict[str, tuple[int, int]]) -> dict[str, float]:
    """The model's greedy pred boxes on the rows ``keys``: IoU where its answer has a box, and how many rows have one.

    ``predictions`` rows carry ``pred`` ``{sampled frame: box in model pixels}`` (:mod:`stvg_lab.infer`).
    """
    rows = {}
    for line in predictions.read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        rows[p["id"]] = {int(k): b for k, b in (p.get("pred") or {}).items()} if not p.get("error") else {}
    have = [(i, rows.get(sid, {}).get(k)) for i, (sid, k) in enumerate(keys)]
    have = [(i, b) for i, b in have if b is not None]
    if not have:
        return {"iou": float("nan"), "covered": 0.0}
    boxes = np.array([np.asarray(b) / np.tile(sizes[keys[i][0]], 2) for i, b in have])
    return {"iou": mean_iou(boxes, gt[[i for i, _ in have]]), "covered": len(have) / len(keys)}


def layer_table(x_tr: np.ndarray, y_tr: np.ndarray, x_te: np.ndarray, y_te: np.ndarray, firsts: Sequence[int] | None = None) -> str:
    """Markdown: per layer and ridge λ, the readout's mean IoU on its train rows / test rows (/ the test rows ``firsts``)."""
    lines = ["| layer | " + " | ".join(f"λ {lam:g}: train / test{' / first' if firsts else ''}" for lam in LAMBDAS) + " |",
             "|---|" + "---:|" * len(LAMBDAS)]
    for layer in range(x_tr.shape[0]):
        cells = []
        for lam in LAMBDAS:
            w = ridge(x_tr[layer], y_tr, lam)
            cell = f"{mean_iou(x_tr[layer] @ w, y_tr):.3f} / {mean_iou(x_te[layer] @ w, y_te):.3f}"
            cells.append(cell + (f" / {mean_iou(x_te[layer][list(firsts)] @ w, y_te[list(firsts)]):.3f}" if firsts else ""))
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def object_cell_features(x: np.ndarray, y: np.ndarray, hidden: int) -> np.ndarray:
    """The video token whose cell holds each row's box centre: ``(L, F, cells * hidden + 2)`` -> ``(L, F, hidden + 1)`` (plus a 1).

    ``x``: :func:`readout_rows`' ``"video"`` features (a frame's cells in row-major order, then two
    extras); ``y``: the rows' boxes in frame units. Why one cell: a readout over every cell must learn
    each attribute once per cell and overfits; the object's own token says what that token carries.
    """
    n_layers, n_rows, d = x.shape
    cells = (d - 2) // hidden
    g = int(round(cells**0.5))  # a square grid of merged tokens (4 x 4 at 112 px)
    cx = np.clip(((y[:, 0] + y[:, 2]) / 2 * g).astype(int), 0, g - 1)
    cy = np.clip(((y[:, 1] + y[:, 3]) / 2 * g).astype(int), 0, g - 1)
    at = x[:, :, : cells * hidden].reshape(n_layers, n_rows, cells, hidden)[:, np.arange(n_rows), cy * g + cx]  # (L, F, hidden)
    return np.concatenate([at, np.ones((n_layers, n_rows, 1))], axis=2)


def classify_accuracy(x_tr: np.ndarray, labels_tr: np.ndarray, x_te: np.ndarray, labels_te: np.ndarray, n_classes: int) -> float:
    """Test accuracy of a ridge regression onto one-hot labels, its λ (of LAMBDAS) chosen on the last fifth of the train rows."""
    onehot = np.eye(n_classes)[labels_tr]
    cut = max(1, int(0.8 * len(labels_tr)))
    lam = max(LAMBDAS, key=lambda l: np.mean((x_tr[cut:] @ ridge(x_tr[:cut], onehot[:cut], l)).argmax(1) == labels_tr[cut:]))
    return float(np.mean((x_te @ ridge(x_tr, onehot, lam)).argmax(1) == labels_te))


def attribute_table(x_tr: np.ndarray, attrs_tr: list[dict], x_te: np.ndarray, attrs_te: list[dict]) -> str:
    """Markdown: per attribute, the test rows' majority-class share and the readout's accuracy at each layer."""
    from stvg_lab.data.synth import ATTRIBUTES, Vocabulary

    vocab = Vocabulary()
    lines = ["| attribute | classes | majority | " + " | ".join(f"layer {k}" for k in range(x_tr.shape[0])) + " |",
             "|---|---:|---:|" + "---:|" * x_tr.shape[0]]
    for a in ATTRIBUTES:
        values = list(vocab.values(a))
        l_tr = np.array([values.index(r[a]) for r in attrs_tr])
        l_te = np.array([values.index(r[a]) for r in attrs_te])
        majority = np.bincount(l_te, minlength=len(values)).max() / len(l_te)
        accs = [classify_accuracy(x_tr[k], l_tr, x_te[k], l_te, len(values)) for k in range(x_tr.shape[0])]
        lines.append(f"| {a} | {len(values)} | {majority:.2f} | " + " | ".join(f"{v:.2f}" for v in accs) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", default="data/synthetic_spread")
    ap.add_argument("--n-train", type=int, default=300, help="one-object train clips to fit on")
    ap.add_argument("--predictions", type=Path, default=None, help="the checkpoint's greedy test answers (predictions.jsonl)")
    ap.add_argument("--answer", action="store_true", help="also print the readout from the answer positions that write each box (readout_rows)")
    ap.add_argument("--attributes", action="store_true",
                    help="also read the object's size, colour, shape and motion from its own video token (object_cell_features)")
    args = ap.parse_args()

    import torch

    from stvg_lab.data.synth import load_synthetic
    from stvg_lab.model import load_model
    from stvg_lab.train.recipe import trained_answer_format
    from stvg_lab.video import model_frame_size

    torch.set_num_threads(1)
    model, processor = load_model(args.checkpoint, device="cpu")
    model.eval()
    fmt = trained_answer_format(args.checkpoint, "compact")  # the prompt and answers it was trained on
    train = one_object(load_synthetic(args.data, "train"))[: args.n_train]
    test = one_object(load_synthetic(args.data, "test"))
    train_rows, test_rows = readout_rows(model, processor, train, fmt), readout_rows(model, processor, test, fmt)
    (x_tr, y_tr, _), (x_te, y_te, keys) = train_rows["video"], test_rows["video"]
    print(f"{args.checkpoint} ({fmt} answers): {len(train)} train / {len(test)} test one-object clips, {len(y_tr)} / {len(y_te)} frames")
    print("\nThe video tokens of each frame:\n\n" + layer_table(x_tr, y_tr, x_te, y_te))
    if args.answer:
        firsts = [i for i, key in enumerate(keys) if i == 0 or keys[i - 1][0] != key[0]]
        for tube in ("think", "pred"):
            if tube in train_rows:
                print(f"\nThe answer's position before each <{tube}_bbox> box (teacher-forced; test: all boxes / each list's first):\n\n"
                      + layer_table(train_rows[tube][0], y_tr, test_rows[tube][0], y_te, firsts))
    if args.attributes:
        hidden = model.config.text_config.hidden_size
        attrs = {s.id: s.extras["attributes"] for s in [*train, *test]}
        print("\nThe object's attributes from its own video token (the cell of its box centre), test accuracy by layer:\n\n"
              + attribute_table(object_cell_features(x_tr, y_tr, hidden), [attrs[i] for i, _ in train_rows["video"][2]],
                                object_cell_features(x_te, y_te, hidden), [attrs[i] for i, _ in keys]))
    print(f"\nthe mean train box on every test frame: IoU {mean_iou(np.tile(y_tr.mean(0), (len(y_te), 1)), y_te):.3f}")
    if args.predictions:
        sizes = {s.id: model_frame_size(s.width, s.height) for s in test}  # the frame load_clip gives the model
        own = own_boxes(args.predictions, keys, y_te, sizes)
        print(f"the model's own pred boxes on these test frames: IoU {own['iou']:.3f} where it wrote one ({100 * own['covered']:.0f} % of frames)")


if __name__ == "__main__":
    main()
