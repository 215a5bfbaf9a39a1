"""The run directory: file names and table schemas (docs/ARCHITECTURE.md, "The run directory").

run.json itself is the typed record in record.py.

Every time column is nanoseconds of `time.perf_counter_ns()` relative to `run.json`'s `t0_perf_ns`.

The tables' Arrow schemas (`SPANS_SCHEMA`, ...) are built on first use: the names here are read
before a profiled script starts, and pyarrow (~0.15-0.4 s to import) is not needed until a reader
builds the tables (traces/tables.py).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

SCHEMA_VERSION = 2  # of run.json (record.py); 2: a script's target moved into `script`

RUN_JSON = "run.json"
SPANS = "spans.parquet"
METRICS = "metrics.parquet"
INFERENCE = "inference.parquet"
TELEMETRY = "telemetry.parquet"
SAMPLES = "samples.parquet"
STACKS = "stacks.json"
PYISESSION = "profile.pyisession"
PSTATS = "profile.pstats"
REPORT = "report.html"
# Child processes' samples: processes/<pid>/samples.parquet + stacks.json (profiler/children.py).
PROCESSES = "processes"

STATUSES = ("running", "complete", "failed", "interrupted", "killed")


@cache
def _schemas() -> dict[str, pa.Schema]:
    import pyarrow as pa

    return {
        "SPANS_SCHEMA": pa.schema(
            [
                ("kind", pa.string()),
                ("name", pa.string()),
                ("start_ns", pa.int64()),
                ("end_ns", pa.int64()),
                ("epoch", pa.int32()),
                ("batch", pa.int32()),
                ("caller", pa.string()),
                ("attrs", pa.string()),
            ]
        ),
        # Per epoch. Energy columns `energy_j.<source>` are appended when telemetry measured power.
        "METRICS_SCHEMA": pa.schema(
            [
                ("epoch", pa.int32()),
                ("train_loss", pa.float64()),
                ("train_acc", pa.float64()),
                ("val_loss", pa.float64()),
                ("val_acc", pa.float64()),
                ("epoch_s", pa.float64()),
                ("images_per_s", pa.float64()),
            ]
        ),
        # kind "batched": one row per test batch; kind "single": one row per image.
        "INFERENCE_SCHEMA": pa.schema(
            [
                ("kind", pa.string()),
                ("index", pa.int32()),
                ("n_images", pa.int32()),
                ("seconds", pa.float64()),
                ("correct", pa.int32()),
            ]
        ),
        "TELEMETRY_SCHEMA": pa.schema(
            [
                ("t_ns", pa.int64()),
                ("source", pa.string()),
                ("metric", pa.string()),
                ("value", pa.float64()),
            ]
        ),
        "SAMPLES_SCHEMA": pa.schema(
            [
                ("t_ns", pa.int64()),
                ("dt_ns", pa.int64()),
                ("stack_id", pa.int32()),
            ]
        ),
    }


def __getattr__(name: str) -> Any:
    """`schema.SPANS_SCHEMA` and the others, built (importing pyarrow) the first time one is read."""
    schemas = _schemas()
    if name in schemas:
        return schemas[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
