"""Writes the files of a run directory. Every write is atomic (temp file + rename), so a reader
never sees half a file, even when the run is killed while writing. JSON is strict: a NaN or an
infinity (a diverged loss, `--lr` gone wild) is written as null, never as a bare `NaN` token that
other JSON readers refuse.

pyarrow is imported by the table functions only: run.json is written at a run's start and end,
where its import (~0.15-0.4 s) would be the run's fixed cost (benchmarks/fixed_cost.py)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def replace_atomically(path: Path, write: Any) -> None:
    # The pid in the name: two readers building the same run's tables at once (traces/tables.py)
    # must not write into one temporary file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def non_finite_paths(data: Any, where: str = "") -> list[str]:
    """Where `data` holds a NaN or an infinity, as dotted paths ("summary.final_train_loss")."""
    if isinstance(data, float):
        return [] if math.isfinite(data) else [where or "(top level)"]
    if isinstance(data, dict):
        return [p for k, v in data.items() for p in non_finite_paths(v, f"{where}.{k}" if where else str(k))]
    if isinstance(data, (list, tuple)):
        return [p for i, v in enumerate(data) for p in non_finite_paths(v, f"{where}[{i}]")]
    return []


def _finite(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {k: _finite(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_finite(v) for v in data]
    return data


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Strict JSON: non-finite numbers become null (find them first with `non_finite_paths`)."""
    text = json.dumps(_finite(data), indent=2, default=str, allow_nan=False) + "\n"
    replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_table(path: Path, columns: dict[str, list[Any]], schema: pa.Schema) -> None:
    """Writes `columns` (name -> values) as Parquet. Columns not in `schema` are appended as float64."""
    write_arrow(path, to_table(columns, schema))


def write_arrow(path: Path, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    replace_atomically(path, lambda tmp: pq.write_table(table, tmp))


def to_table(columns: dict[str, list[Any]], schema: pa.Schema) -> pa.Table:
    """`columns` as the Arrow table `write_table` writes (so a stream read in place of its table
    gives the same pandas types)."""
    import pyarrow as pa

    fields = list(schema)
    names = {f.name for f in fields}
    fields += [pa.field(name, pa.float64()) for name in columns if name not in names]
    full = pa.schema(fields)
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in full]
    return pa.Table.from_arrays(arrays, schema=full)
