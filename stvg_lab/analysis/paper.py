"""The paper's published numbers as data: ``stvg_lab/assets/paper_tables.yaml``.

The YAML is transcribed from the STVG-o1 paper (arXiv:2511.21375 v1; its tables are images, the
values come from the v1 text) and cites that source. Tables are keyed ``main`` (Tables 1-3, one
column per benchmark), ``tab4`` (open vocabulary), ``tab5``-``tab8`` (ablations on HCSTVG-v1) and
``tab9`` (inference complexity). Ablation rows are keyed by the grid's variant names
(``stvg_lab.analysis.grid``), so a table can put our runs beside the paper's row.

Metric values are percentages, as published; None where the paper gives no value.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

PAPER_TABLES_FILE = Path(__file__).resolve().parent.parent / "assets" / "paper_tables.yaml"
METRICS: tuple[str, ...] = ("m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5")
ABLATION_TABLES: tuple[str, ...] = ("tab5", "tab6", "tab7", "tab8")
DEFAULT_BENCHMARK = "hcstvg-v1"


@lru_cache(maxsize=1)
def paper_tables() -> dict[str, Any]:
    """The parsed YAML: ``{"source": str, "metrics": [...], "tables": {name: {...}}}``."""
    data = yaml.safe_load(PAPER_TABLES_FILE.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or "tables" not in data:
        raise ValueError(f"{PAPER_TABLES_FILE}: expected a mapping with a 'tables' key; the package data is damaged")
    return data


def _table(table: str) -> dict[str, Any]:
    tables = paper_tables()["tables"]
    if table not in tables:
        raise KeyError(f"no paper table {table!r}; known tables: {sorted(tables)} (file {PAPER_TABLES_FILE})")
    return tables[table]


def paper_variants(table: str) -> list[str]:
    """Row keys of ``table`` in the paper's order (ablations: grid variant names; others: method names)."""
    return list(_table(table)["rows"])


def paper_title(table: str) -> str:
    """The table's title and benchmark, e.g. ``"Think reward (Table 6), HCSTVG-v1"``."""
    t = _table(table)
    bench = t.get("benchmark")
    return f"{t['title']}, {bench}" if bench else t["title"]


def _metric_values(values: list[float | None] | None, where: str) -> dict[str, float | None]:
    if values is None:
        return {m: None for m in METRICS}
    if len(values) != len(METRICS):
        raise ValueError(f"{PAPER_TABLES_FILE}: {where} has {len(values)} values, expected {len(METRICS)} ({METRICS})")
    return {m: (None if v is None else float(v)) for m, v in zip(METRICS, values)}


def paper_row(table: str, variant: str, benchmark: str | None = None) -> dict[str, Any]:
    """One row of the paper's ``table`` (``main``, ``tab4``-``tab9``) for ``variant``.

    Returns ``{"label", "note", "m_tIoU", "m_vIoU", "vIoU@0.3", "vIoU@0.5"}`` in % (None where the
    paper has no value); for ``tab9`` ``{"label", "note", "latency_s", "memory_gb"}``. ``main``
    needs a ``benchmark`` (default ``"hcstvg-v1"``; also ``hcstvg-v2``, ``vidstg-declarative``,
    ``vidstg-interrogative``). Raises KeyError naming what exists when the table, row or
    benchmark is unknown.
    """
    t = _table(table)
    rows = t["rows"]
    if variant not in rows:
        raise KeyError(f"paper table {table!r} has no row {variant!r}; rows: {list(rows)}")
    row = rows[variant]
    where = f"tables.{table}.rows.{variant}"
    if table == "main":
        bench = benchmark or DEFAULT_BENCHMARK
        if bench not in t["benchmarks"]:
            raise KeyError(f"paper table 'main' has no benchmark {bench!r}; benchmarks: {list(t['benchmarks'])}")
        out: dict[str, Any] = {"label": variant, "note": t["benchmarks"][bench]}
        out.update(_metric_values(row.get(bench), f"{where}.{bench}"))
        return out
    if benchmark is not None:
        raise KeyError(f"paper table {table!r} has a single benchmark ({t.get('benchmark')}); do not pass benchmark")
    out = {"label": row.get("label", variant), "note": row.get("note")}
    if table == "tab9":
        out.update({c: (None if row.get(c) is None else float(row[c])) for c in t["columns"]})
    else:
        out.update(_metric_values(row.get("values"), where))
    return out


def paper_source() -> str:
    """The citation of where the numbers come from."""
    return str(paper_tables()["source"])
