"""Writes the files of a run directory. Every write is atomic (temp file + rename), so a reader
never sees half a file, even when the run is killed while writing."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _replace_atomically(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_json(path: Path, data: dict[str, Any]) -> None:
    def write(tmp: Path) -> None:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")

    _replace_atomically(path, write)


def write_table(path: Path, columns: dict[str, list[Any]], schema: pa.Schema) -> None:
    """Writes `columns` (name -> values) as Parquet. Columns not in `schema` are appended as float64."""
    fields = list(schema)
    names = {f.name for f in fields}
    fields += [pa.field(name, pa.float64()) for name in columns if name not in names]
    full = pa.schema(fields)
    n = len(next(iter(columns.values()))) if columns else 0
    arrays = [pa.array(columns.get(f.name, [None] * n), type=f.type) for f in full]
    table = pa.Table.from_arrays(arrays, schema=full)
    _replace_atomically(path, lambda tmp: pq.write_table(table, tmp))
