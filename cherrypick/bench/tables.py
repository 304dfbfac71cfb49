"""Tables of measured runs for the replay benchmark: a trial "runs" by looking its row up.

Table format (CSV, one row per configuration of one workload, ``#`` lines are comments):

- ``workload``: the job measured; ``runtime_s``: measured seconds;
- ``completed`` (optional): False marks a failed run (crash, limit hit): infeasible, never cheap;
- the price: ``price_per_node_hour`` and ``nodes``, or ``price_per_hour`` for the whole config;
- ``cost_usd`` (optional): overrides price x runtime (e.g. it adds storage). The configuration's
  known price is then cost / runtime, so the optimiser's "price x runtime" stays exact;
- every other column is a configuration feature: numbers stay numbers (log-scaled when positive),
  strings become categories (one column per value).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from cherrypick._text import read_text
from cherrypick.errors import InputError, UnknownNameError, ValidationError
from cherrypick.units import job_cost

__all__ = ["ReplayTable", "ReplayWorkload", "load_table", "select_workloads"]

RESERVED = {
    "workload",
    "runtime_s",
    "completed",
    "price_per_node_hour",
    "price_per_hour",
    "cost_usd",
}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass(frozen=True)
class ReplayWorkload:
    """The measured configurations of one workload, as arrays aligned by row."""

    name: str
    configs: tuple[dict[str, str], ...]
    feature_names: tuple[str, ...]
    features: NDArray[np.float64]
    price_per_hour: NDArray[np.float64]
    runtime_s: NDArray[np.float64]
    completed: NDArray[np.bool_]
    cost_usd: NDArray[np.float64]

    @property
    def size(self) -> int:
        return len(self.configs)

    def feasible(self, max_runtime_s: float | None) -> NDArray[np.bool_]:
        ok = self.completed.copy()
        if max_runtime_s is not None:
            ok &= self.runtime_s <= max_runtime_s
        return ok

    def optimum_cost(self, max_runtime_s: float | None) -> float:
        feasible = self.feasible(max_runtime_s)
        if not feasible.any():
            raise InputError(f"workload '{self.name}' has no feasible configuration")
        return float(self.cost_usd[feasible].min())


@dataclass(frozen=True)
class ReplayTable:
    source: str
    workloads: dict[str, ReplayWorkload]

    def select(self, names: Sequence[str] | None) -> list[ReplayWorkload]:
        if not names:
            return list(self.workloads.values())
        for name in names:
            if name not in self.workloads:
                raise UnknownNameError("workload", name, self.workloads)
        return [self.workloads[n] for n in names]


def select_workloads(
    tables: Sequence[ReplayTable], names: Sequence[str] | None
) -> list[ReplayWorkload]:
    """Workloads of several tables together; a name must not appear in two tables."""
    merged: dict[str, ReplayWorkload] = {}
    for table in tables:
        for name, workload in table.workloads.items():
            if name in merged:
                raise InputError(f"workload '{name}' appears in more than one table")
            merged[name] = workload
    return ReplayTable("+".join(t.source for t in tables), merged).select(names)


@dataclass(frozen=True)
class _Row:
    line: int
    values: dict[str, str]


def load_table(path: Path | str) -> ReplayTable:
    """Read and validate a replay table; errors name the file, line and column."""
    source = str(path)
    header_line, header, rows = _read_rows(source, read_text(path, "table"))
    _check_columns(source, header, header_line)
    features = [c for c in header if c not in RESERVED]
    grouped: dict[str, list[_Row]] = {}
    for row in rows:
        name = row.values["workload"].strip()
        if not name:
            raise ValidationError(source, "empty workload name", line=row.line, field="workload")
        grouped.setdefault(name, []).append(row)
    if not grouped:
        raise ValidationError(source, "the table has no rows")
    workloads = {n: _workload(source, n, rs, features) for n, rs in grouped.items()}
    return ReplayTable(source, workloads)


def _read_rows(source: str, text: str) -> tuple[int, list[str], list[_Row]]:
    lines = [(i + 1, ln) for i, ln in enumerate(text.splitlines()) if not ln.startswith("#")]
    lines = [(i, ln) for i, ln in lines if ln.strip()]
    if not lines:
        raise ValidationError(source, "the table is empty")
    reader = csv.reader(ln for _, ln in lines)
    header = [h.strip() for h in next(reader)]
    rows = []
    for (line, _), values in zip(lines[1:], reader, strict=True):
        if len(values) != len(header):
            raise ValidationError(
                source, f"expected {len(header)} values, found {len(values)}", line=line
            )
        rows.append(_Row(line, dict(zip(header, values, strict=True))))
    return lines[0][0], header, rows


def _check_columns(source: str, header: list[str], line: int) -> None:
    for column in ("workload", "runtime_s"):
        if column not in header:
            raise ValidationError(source, "missing required column", line=line, field=column)
    if "price_per_hour" not in header and not {"price_per_node_hour", "nodes"} <= set(header):
        raise ValidationError(
            source,
            "needs price_per_hour, or price_per_node_hour and nodes",
            line=line,
            field="price",
        )


def _number(source: str, row: _Row, column: str, *, positive: bool = False) -> float:
    raw = row.values[column].strip()
    try:
        value = float(raw)
    except ValueError:
        raise ValidationError(
            source, f"expected a number, got '{raw}'", line=row.line, field=column
        ) from None
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        expected = "a positive number" if positive else "a non-negative number"
        raise ValidationError(
            source, f"expected {expected}, got '{raw}'", line=row.line, field=column
        )
    return value


def _completed(source: str, row: _Row) -> bool:
    raw = row.values.get("completed", "true").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValidationError(
        source, f"expected True or False, got '{raw}'", line=row.line, field="completed"
    )


def _workload(source: str, name: str, rows: list[_Row], features: list[str]) -> ReplayWorkload:
    done = np.array([_completed(source, r) for r in rows])
    runtime = np.array(
        [
            _number(source, r, "runtime_s", positive=bool(ok))
            for r, ok in zip(rows, done, strict=True)
        ]
    )
    price = np.array([_listed_price(source, r) for r in rows])
    if "cost_usd" in rows[0].values:
        cost = np.array([_number(source, r, "cost_usd") for r in rows])
        measured = (runtime > 0) & (cost > 0)
        price = np.where(measured, cost / np.maximum(runtime, 1e-9) * 3600.0, price)
    else:
        cost = job_cost(price, runtime)
    if not done.any():
        raise ValidationError(source, f"workload '{name}' has no completed run", field="completed")
    names, matrix = _feature_matrix(source, rows, features)
    configs = tuple({c: r.values[c] for c in features} for r in rows)
    return ReplayWorkload(name, configs, names, matrix, price, runtime, done, cost)


def _listed_price(source: str, row: _Row) -> float:
    if "price_per_hour" in row.values:
        return _number(source, row, "price_per_hour", positive=True)
    per_node = _number(source, row, "price_per_node_hour", positive=True)
    return per_node * _number(source, row, "nodes", positive=True)


def _feature_matrix(
    source: str, rows: list[_Row], features: list[str]
) -> tuple[tuple[str, ...], NDArray[np.float64]]:
    raw = {c: [r.values[c].strip() for r in rows] for c in features}
    numeric = {c: v for c in features if (v := _as_numbers(raw[c])) is not None}
    if "nodes" in numeric:
        # A cluster's totals (e.g. memory of all nodes) often decide its speed: add them.
        for c in [c for c in numeric if c.endswith("_per_node")]:
            numeric["total_" + c.removesuffix("_per_node")] = numeric[c] * numeric["nodes"]
    names: list[str] = []
    columns: list[NDArray[np.float64]] = []
    for column, numbers in numeric.items():
        positive = bool((numbers > 0).all())
        names.append(f"log({column})" if positive else column)
        columns.append(np.log(numbers) if positive else numbers)
    for column in _independent_categories(raw, [c for c in features if c not in numeric]):
        values = sorted(set(raw[column]))
        for value in values[1:] if len(values) == 2 else values:
            names.append(f"{column}={value}")
            columns.append(np.array([v == value for v in raw[column]], dtype=np.float64))
    if not columns:
        raise ValidationError(source, "no feature columns besides the reserved ones")
    return tuple(names), np.column_stack(columns)


def _independent_categories(raw: dict[str, list[str]], categories: list[str]) -> list[str]:
    """Drop a category that the other columns determine (vm_type = family + size): it adds
    dimensions for the model to learn and no information."""
    kept = list(categories)
    for column in sorted(categories, key=lambda c: -len(set(raw[c]))):
        others = [c for c in raw if c != column and (c in kept or c not in categories)]
        keys = list(zip(*(raw[c] for c in others), strict=True)) if others else []
        if others and len(set(keys)) == len(set(zip(keys, raw[column], strict=True))):
            kept.remove(column)
    return kept


def _as_numbers(raw: list[str]) -> NDArray[np.float64] | None:
    try:
        return np.array([float(v) for v in raw])
    except ValueError:
        return None
