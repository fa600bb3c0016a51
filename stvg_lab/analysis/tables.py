"""Our results in the paper's table layouts (markdown and LaTeX), beside the paper's published numbers.

* :func:`ablation_table`: Tables 5-8 from a grid (``stvg_lab.analysis.grid``): one row per variant
  of that table, in the paper's order; columns m_tIoU / m_vIoU / vIoU@0.3 / vIoU@0.5 in %, ours
  as ``mean ± spread`` over seeds and the paper's HCSTVG-v1 value in the adjacent column group.
  The spread is the *sample* standard deviation over seeds (``ddof = 1``, divisor n − 1); with
  one seed there is none and only the mean is shown. The number of seeds is a column.
* :func:`results_table`: free comparisons (untrained / SFT / GRPO / baselines), think and pred
  rows per model, with the paper's main-table rows (Table 1) below, labelled as such.
* :func:`heldout_reward_table`: the mean reward terms (Eq. 3-10) of each model's answers to the
  evaluation clips, from the evaluations' ``reward`` (:func:`stvg_lab.evaluate.answer_rewards`).
* :func:`complexity_table`: Table 9 per answer format from evaluation folders: latency s/sample,
  generated tokens, peak memory, on the same samples, with the paper's 15.49 s / 24.2 GB row.

Every table carries a caption saying what "ours" is; by default "synthetic benchmark, CPU
stand-in model — not comparable in scale to the paper's HCSTVG-v1 / Qwen2.5-VL-7B numbers".
Pass ``ours_label`` when the runs are on a real benchmark and model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from stvg_lab.analysis.grid import GridResults, load_rows, tube_metrics
from stvg_lab.analysis.paired import RESCORE_HINT
from stvg_lab.analysis.paper import ABLATION_TABLES, METRICS, paper_row, paper_title, paper_variants

FORMATS_OUT: tuple[str, ...] = ("markdown", "latex")
DEFAULT_OURS = (
    "synthetic benchmark, CPU stand-in model — not comparable in scale to the paper's "
    "HCSTVG-v1 / Qwen2.5-VL-7B numbers"
)
SPREAD_NOTE = "mean ± sample std (n−1) over seeds"
DASH = "—"
# a table row that the grid may have run under another name (same recipe: λk = 0.5 is the full model)
ALIASES: dict[str, tuple[str, ...]] = {"full": ("lambda_k=0.5",), "lambda_k=0.5": ("full",)}
PAPER_MAIN_METHODS: tuple[str, ...] = ("Qwen2.5-VL (base)", "Qwen2.5-VL-SFT", "STVG-o1")

Rows = Sequence[Sequence[str]]


def _latex_escape(text: str) -> str:
    text = text.replace("λk", "\x00")  # λk is one symbol: λ with subscript k
    out = []
    for ch in text:
        out.append({
            "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
            "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
            "±": r"$\pm$", "—": "--", "−": "$-$", "λ": r"$\lambda$", "Δ": r"$\Delta$", "≤": r"$\leq$",
            "\x00": r"$\lambda_k$",
        }.get(ch, ch))
    return "".join(out)


def render_table(
    header: Sequence[str],
    rows: Rows,
    fmt: str = "markdown",
    caption: str = "",
    groups: Sequence[tuple[str, int]] | None = None,
    label: str | None = None,
) -> str:
    """A table as markdown (caption paragraph above a pipe table) or LaTeX (booktabs ``table``).

    ``groups``: column-group headers as ``(title, span)`` covering the columns left to right
    (LaTeX: a ``\\multicolumn`` row; markdown: prefixed to the column names). The first column
    is left-aligned, the others right-aligned.
    """
    if fmt not in FORMATS_OUT:
        raise ValueError(f"fmt must be one of {FORMATS_OUT}, got {fmt!r}")
    if any(len(r) != len(header) for r in rows):
        raise ValueError(f"every row needs {len(header)} cells (the header's {list(header)})")
    if groups is not None and sum(span for _, span in groups) != len(header):
        raise ValueError(f"column groups span {sum(s for _, s in groups)} columns, the header has {len(header)}")
    if fmt == "markdown":
        names = list(header)
        if groups:
            i = 0
            for title, span in groups:
                for j in range(i, i + span):
                    if title:
                        names[j] = f"{title} {names[j]}"
                i += span
        lines = ["| " + " | ".join(names) + " |", "|:---|" + "---:|" * (len(header) - 1)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return (f"{caption}\n\n" if caption else "") + "\n".join(lines) + "\n"
    cols = "l" + "r" * (len(header) - 1)
    out = [r"\begin{table}[t]", r"\centering"]
    if caption:
        out.append(r"\caption{" + _latex_escape(caption) + "}")
    if label:
        out.append(r"\label{" + label + "}")
    out += [r"\begin{tabular}{" + cols + "}", r"\toprule"]
    if groups:
        cells, rules, i = [], [], 1
        for title, span in groups:
            cells.append(r"\multicolumn{%d}{c}{%s}" % (span, _latex_escape(title)) if span > 1 else _latex_escape(title))
            if title and span > 1:
                rules.append(r"\cmidrule(lr){%d-%d}" % (i, i + span - 1))
            i += span
        out.append(" & ".join(cells) + r" \\")
        out.extend(rules)
    out.append(" & ".join(_latex_escape(h) for h in header) + r" \\")
    out.append(r"\midrule")
    out += [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(out) + "\n"


def mean_spread(values: Sequence[float]) -> tuple[float, float | None, int]:
    """``(mean, sample std with ddof=1 or None for fewer than two values, n)``."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError("no values to average")
    std = float(arr.std(ddof=1)) if arr.size > 1 else None
    return float(arr.mean()), std, int(arr.size)


def format_cell(mean: float | None, spread: float | None = None, scale: float = 100.0, digits: int = 1) -> str:
    """``"55.0 ± 7.1"`` (values × ``scale``), ``"55.0"`` without a spread, ``"—"`` for None/NaN."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return DASH
    text = f"{mean * scale:.{digits}f}"
    if spread is not None:
        text += f" ± {spread * scale:.{digits}f}"
    return text


def _tidy_rows(results: GridResults | Iterable[Mapping[str, Any]] | str | Path) -> list[Mapping[str, Any]]:
    if isinstance(results, GridResults):
        return results.rows()
    if isinstance(results, (str, Path)):
        return load_rows(results)
    rows = list(results)
    for i, r in enumerate(rows):
        missing = {"variant", "seed", "tube", "metric", "value"} - set(r)
        if missing:
            raise ValueError(f"results row {i} lacks {sorted(missing)}: expected tidy rows (variant, seed, tube, metric, value)")
    return rows


def _seed_values(rows: Sequence[Mapping[str, Any]], variant: str, tube: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for name in (variant, *ALIASES.get(variant, ())):
        seen = [r for r in rows if r["variant"] == name and r["tube"] == tube]
        if seen:
            for m in METRICS:
                # one value per seed (a seed listed twice would be counted twice: keep the first)
                by_seed: dict[Any, float] = {}
                for r in seen:
                    if r["metric"] == m:
                        by_seed.setdefault(r["seed"], float(r["value"]))
                out[m] = list(by_seed.values())
            return out
    return out


def ablation_table(
    results: GridResults | Iterable[Mapping[str, Any]] | str | Path,
    table: str = "tab5",
    fmt: str = "markdown",
    *,
    tube: str = "pred",
    ours_label: str = DEFAULT_OURS,
) -> str:
    """Table 5, 6, 7 or 8 in the paper's layout, ours (mean ± sample std over seeds) beside the paper's values.

    ``results``: a :class:`~stvg_lab.analysis.grid.GridResults`, its tidy rows (``variant``,
    ``seed``, ``tube``, ``metric``, ``value`` as a fraction) or a grid folder / ``results.jsonl``.
    Rows are the table's variants in the paper's order (``full`` also answers for
    ``lambda_k=0.5`` and back); a row the paper does not have (e.g. λk = 0, ``overlap_penalty``)
    appears only when the results contain it. Ours are the ``tube`` scores (the paper reports
    the final prediction, ``pred``), in %, one decimal.
    """
    if table not in ABLATION_TABLES:
        raise ValueError(f"table must be one of {ABLATION_TABLES}, got {table!r}")
    tidy = _tidy_rows(results)
    body = []
    for variant in paper_variants(table):
        paper = paper_row(table, variant)
        ours = _seed_values(tidy, variant, tube)
        has_paper = any(paper[m] is not None for m in METRICS)
        n = max(len(v) for v in ours.values())
        if not has_paper and n == 0:
            continue
        cells = [paper["label"], str(n) if n else DASH]
        for m in METRICS:
            if ours[m]:
                mean, std, _ = mean_spread(ours[m])
                cells.append(format_cell(mean, std))
            else:
                cells.append(DASH)
        cells += [format_cell(paper[m], scale=1.0) for m in METRICS]
        body.append(cells)
    caption = (
        f"{paper_title(table)}. In %. Ours ({tube} tube): {SPREAD_NOTE}; ours: {ours_label}. "
        f"Paper: HCSTVG-v1, Qwen2.5-VL-7B, as published."
    )
    header = ["Variant", "seeds", *METRICS, *METRICS]
    groups = [("", 2), ("ours", 4), ("paper", 4)]
    return render_table(header, body, fmt, caption, groups, label=f"tab:stvg-lab-{table}")


def _load_metrics(src: Mapping[str, Any] | str | Path) -> Mapping[str, Any]:
    if isinstance(src, Mapping):
        return src
    path = Path(src)
    if path.is_dir():
        for candidate in (path / "metrics.json", path / "eval" / "metrics.json"):
            if candidate.is_file():
                path = candidate
                break
    if not path.is_file():
        raise FileNotFoundError(f"{src}: no metrics.json (give an evaluation folder, its metrics.json or a metrics dict)")
    data = json.loads(path.read_text(encoding="utf-8"))
    return data["metrics"] if "recipe_hash" in data and "metrics" in data else data  # a grid run's marker wraps them


def _seed_row(label: Any, tube: str, runs: Sequence[Mapping[str, float]]) -> list[str]:
    """One table row: label, tube, number of seeds, then each metric's mean ± sample std over ``runs``."""
    return [str(label), tube, str(len(runs)), *(format_cell(*mean_spread([r[m] for r in runs])[:2]) for m in METRICS)]


def results_table(
    rows: Mapping[str, Any] | Sequence[tuple[str, Any]],
    fmt: str = "markdown",
    *,
    paper_methods: Sequence[str] = PAPER_MAIN_METHODS,
    benchmark: str = "hcstvg-v1",
    include_baselines: bool = True,
    ours_label: str = DEFAULT_OURS,
) -> str:
    """Untrained / SFT / GRPO / baseline comparisons: think and pred rows per model, paper rows below.

    ``rows`` maps a label to one evaluation or a list of them (seeds: mean ± sample std), each a
    ``metrics.json`` dict of :mod:`stvg_lab.evaluate`, its path, or an evaluation / grid-run
    folder. A no-think model has only a pred row. With ``include_baselines`` each model also gets
    its ``controls`` row (its pred spans with the mean training box, :mod:`stvg_lab.baselines`), and
    the trivial baselines found in the evaluations' ``baselines`` are added once each (pred). The paper's
    ``paper_methods`` rows of the main table (``benchmark``, default HCSTVG-v1, final
    prediction) follow, labelled ``paper (<benchmark>): <method>``.
    """
    items = list(rows.items()) if isinstance(rows, Mapping) else [tuple(r) for r in rows]
    body = []
    baselines: dict[str, Mapping[str, Any]] = {}
    for label, src in items:
        evals = [_load_metrics(s) for s in (src if isinstance(src, (list, tuple)) else [src])]
        per_tube = [tube_metrics(e) for e in evals]
        for tube in ("think", "pred"):
            runs = [t[tube] for t in per_tube if tube in t]
            if not runs:
                continue
            body.append(_seed_row(label, tube, runs))
        if include_baselines:
            # the model's own pred spans with the mean box: its boxes ground by as much as pred exceeds this row
            for name in dict.fromkeys(k for e in evals for k in (e.get("controls") or {})):
                runs = [e["controls"][name] for e in evals if name in (e.get("controls") or {})]
                body.append(_seed_row(label, name, runs))
        for e in evals:
            for name, scores in (e.get("baselines") or {}).items():
                baselines.setdefault(name, scores)
    if include_baselines:
        for name, scores in baselines.items():
            body.append([f"baseline: {name}", "pred", "1", *(format_cell(float(scores[m])) for m in METRICS)])
    for method in paper_methods:
        paper = paper_row("main", method, benchmark)
        body.append([f"paper ({benchmark}): {method}", "pred", DASH, *(format_cell(paper[m], scale=1.0) for m in METRICS)])
    caption = (
        f"Results in %; ours: {ours_label}; several seeds: {SPREAD_NOTE}. "
        f"Paper rows: {paper_row('main', paper_methods[0], benchmark)['note'] if paper_methods else benchmark}, "
        "as published (final prediction)."
    )
    return render_table(["Model", "tube", "seeds", *METRICS], body, fmt, caption, label="tab:stvg-lab-results")


REWARD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("format", "R_f (Eq. 3)"), ("consistency", "R_c (Eq. 4)"), ("temporal", "R_t (Eq. 5)"), ("spatial", "R_s (Eq. 8)"),
    ("think", "R_k (Eq. 9)"), ("total", "R (Eq. 10)"), ("spa_pred", "pred R_spa (Eq. 7)"), ("spa_think", "think R_spa (Eq. 7)"),
)
"""``metrics.json`` ``reward`` key -> column of :func:`heldout_reward_table`."""


def heldout_reward_table(rows: Mapping[str, Any] | Sequence[tuple[str, Any]], fmt: str = "markdown") -> str:
    """The mean reward terms of each model's answers to the evaluation clips, in reward units.

    ``rows`` as for :func:`results_table` (a label to one evaluation or a list of seeds: mean ± sample
    std). The terms are the paper's rewards whatever a model trained on (``metrics.json`` ``reward``,
    :func:`stvg_lab.evaluate.answer_rewards`): GRPO raises R on its training prompts, this is R on clips
    it never saw, term by term. An evaluation written before rewards were scored is refused by name.
    """
    body, lambdas = [], set()
    for label, src in (list(rows.items()) if isinstance(rows, Mapping) else [tuple(r) for r in rows]):
        evals = [_load_metrics(x) for x in (src if isinstance(src, (list, tuple)) else [src])]
        if any(not e.get("reward") for e in evals):
            raise ValueError(f"{label}: an evaluation without 'reward'; {RESCORE_HINT}")
        lambdas.update(e["reward"]["lambda_k"] for e in evals)
        body.append([str(label), str(len(evals)),
                     *(format_cell(*mean_spread([e["reward"][k] for e in evals])[:2], scale=1.0, digits=3) for k, _ in REWARD_COLUMNS)])
    caption = (f"Mean reward of each model's answers to the evaluation clips: the paper's rewards (GIoU − L1, λk = "
               f"{', '.join(f'{x:g}' for x in sorted(lambdas))}), whatever the model trained on; R = R_f + R_c + R_t + R_s + λk R_k. "
               "Spread: sample std over seeds.")
    return render_table(["model", "seeds", *(name for _, name in REWARD_COLUMNS)], body, fmt, caption)


def _per_sample(path: Path) -> list[dict[str, Any]]:
    file = path / "per_sample.jsonl"
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def complexity_table(
    eval_dirs_by_format: Mapping[str, str | Path],
    fmt: str = "markdown",
    *,
    require_same_samples: bool = True,
    paper_rows: bool = True,
    ours_label: str = DEFAULT_OURS,
) -> str:
    """Table 9 per answer format: latency (s/sample), generated tokens, peak memory, from evaluation folders.

    ``eval_dirs_by_format`` maps a format label (``paper``, ``compact``, ``no_think``…) to the
    folder :func:`stvg_lab.evaluate.evaluate_model` wrote (``metrics.json``,
    ``per_sample.jsonl``). Latency and tokens are mean ± sample std over samples (from
    ``per_sample.jsonl``; ``metrics.json``'s means when it has none); peak memory is the largest
    per-sample peak in GB (10⁹ bytes), measured as ``metrics.json``'s ``mem_measure`` says (on
    CPU the whole process's resident set: compare differences between rows, not the absolute
    values with the paper's GPU memory). The ``batch`` column is the evaluation's batch size: a
    sample's latency is its batch's generate time divided by the batch size, so Table 9's
    s/sample needs ``batch_size=1``. With ``require_same_samples`` the folders must hold
    the same sample ids (ValueError otherwise), so the rows compare like with like. The
    paper's rows (STVG-o1 15.49 s / 24.2 GB, …) follow when ``paper_rows``.
    """
    body = []
    ids_by_format: dict[str, set[str]] = {}
    for label, folder in eval_dirs_by_format.items():
        folder = Path(folder)
        metrics = _load_metrics(folder)
        samples = _per_sample(folder)
        ids_by_format[label] = {str(s["id"]) for s in samples}
        lat = [s["latency_s"] for s in samples if s.get("latency_s") is not None]
        tok = [s["generated_tokens"] for s in samples if s.get("generated_tokens") is not None]
        if lat:
            m, sd, _ = mean_spread(lat)
            lat_cell = format_cell(m, sd, scale=1.0, digits=3)
        else:
            lat_cell = format_cell(metrics.get("mean_latency_s"), scale=1.0, digits=3)
        if tok:
            m, sd, _ = mean_spread(tok)
            tok_cell = format_cell(m, sd, scale=1.0, digits=1)
        else:
            tok_cell = format_cell(metrics.get("mean_generated_tokens"), scale=1.0, digits=1)
        peak = metrics.get("max_peak_mem_bytes")
        mem_cell = format_cell(None if peak is None else peak / 1e9, scale=1.0, digits=2)
        measure = ", ".join(metrics.get("mem_measure") or []) or DASH
        rate = metrics.get("parse_failure_rate")
        batch = (metrics.get("settings") or {}).get("batch_size")
        body.append([str(label), str(metrics.get("n", len(samples))), DASH if batch is None else str(batch), lat_cell,
                     tok_cell, mem_cell, measure, format_cell(rate)])
    if require_same_samples and len(ids_by_format) > 1:
        ref_label, ref = next(iter(ids_by_format.items()))
        for label, ids in ids_by_format.items():
            if ids != ref:
                raise ValueError(
                    f"complexity_table: {eval_dirs_by_format[label]} ({label}) holds {len(ids)} samples, "
                    f"{len(ids ^ ref)} of them different from {eval_dirs_by_format[ref_label]} ({ref_label}); "
                    "evaluate every format on the same samples, or pass require_same_samples=False"
                )
    if paper_rows:
        for method in ("STVG-o1", "Qwen2.5-VL-SFT", "LLaVA-ST"):
            p = paper_row("tab9", method)
            body.append([f"paper: {p['label']}", DASH, DASH, format_cell(p["latency_s"], scale=1.0, digits=2), DASH,
                         format_cell(p["memory_gb"], scale=1.0, digits=1), "one GPU", DASH])
    n = len(next(iter(ids_by_format.values()))) if ids_by_format else 0
    caption = (
        f"Table 9: inference complexity per answer format, measured on the same {n} samples "
        f"(latency and tokens: mean ± sample std over samples, a batch's generate time shared equally by its samples, "
        f"so measure with batch 1; memory: largest per-sample peak). "
        f"Ours: {ours_label}. Paper: {paper_title('tab9')}, as published."
    )
    header = ["answer format", "samples", "batch", "latency (s/sample)", "generated tokens", "peak memory (GB)",
              "memory measured as", "unparsed (%)"]
    return render_table(header, body, fmt, caption, label="tab:stvg-lab-complexity")
