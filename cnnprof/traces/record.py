"""run.json as one typed record: `RunRecord`, written by `write_record`, read by `read_record`.

The record is the contract between the parts (docs/ARCHITECTURE.md, "The run directory"): the
session fills it, the observers add their sections, the reports and the diagnosis read it. The
reader validates every typed field and answers a bad file with one line (`RunDirError`). Fields
this version does not know (an observer's section, a field a later cnnprof adds) are kept
verbatim in `sections` and written back at the top level, so a record survives a round trip.

Version 2 moved a script run's target out of `config` (`target`, `args`, `module`) and the top
level (`exit_code`) into `script`; older files are converted on reading.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from . import schema
from .writer import write_json

KINDS = ("train", "script", "block")  # our loops / `cnnprof profile` / a block under the Python API


class RunDirError(UserError):
    """The path is not a readable run directory."""


@dataclass
class Host:
    os: str = ""
    machine: str = ""
    hostname: str = ""
    cpu_model: str = ""
    logical_cpus: int | None = None
    physical_cpus: int | None = None
    p_cores: int | None = None
    e_cores: int | None = None
    ram_gb: float | None = None
    python: str = ""


@dataclass
class Backend:
    """What computed: for a train run the backend asked for, for a script what it used (`detected`)."""

    name: str = ""  # torch_cpu, torch_cuda, torch_mps, mlx_gpu, mlx_cpu
    framework: str = ""  # torch | mlx
    framework_version: str = ""
    device: str = ""  # cpu | cuda | mps | gpu
    device_name: str = ""
    detected: bool = False  # inferred from the script's imports and where its syncs ran


@dataclass
class Dataset:
    name: str = ""
    train: int = 0
    validation: int = 0
    test: int = 0
    shape: list[int] = field(default_factory=list)
    classes: int = 0


@dataclass
class Model:
    name: str = ""
    parameters: int = 0


@dataclass
class Script:
    """A `cnnprof profile` target: a script path or a module name, and its own argv."""

    path: str
    module: bool = False
    argv: list[str] = field(default_factory=list)
    exit_code: int | None = None

    @property
    def name(self) -> str:
        return self.path if self.module else Path(self.path).name


@dataclass
class Telemetry:
    """The telemetry observer's section."""

    sources: dict[str, str] = field(default_factory=dict)  # name -> "ok" | "unavailable: <reason>"
    # "<source>.<metric>" -> {"unit", "description", "source"}
    metrics: dict[str, dict[str, str]] = field(default_factory=dict)
    interval_ms: float | None = None
    error: str | None = None
    rows: int = 0
    warnings: list[str] = field(default_factory=list)
    last_s: dict[str, float] = field(default_factory=dict)  # each source's last reading, s after t0


@dataclass
class RunRecord:
    t0_perf_ns: int  # the clock anchor: every time column is ns of perf_counter_ns relative to it
    kind: str = "train"
    status: str = "running"
    error: str | None = None
    schema_version: int = schema.SCHEMA_VERSION
    cnnprof_version: str = ""
    argv: list[str] = field(default_factory=list)  # cnnprof's own command line
    t0_unix_ns: int = 0
    started: str = ""
    pid: int | None = None
    duration_ns: int | None = None
    ended_unix_ns: int | None = None  # the wall clock when the run's end wrote this record
    host: Host = field(default_factory=Host)
    config: dict[str, Any] = field(default_factory=dict)  # the options the run was started with
    script: Script | None = None
    backend: Backend = field(default_factory=Backend)
    dataset: Dataset | None = None
    model: Model | None = None
    telemetry: Telemetry = field(default_factory=Telemetry)
    profiler: dict[str, Any] = field(default_factory=dict)  # the stack profiler's section
    summary: dict[str, Any] = field(default_factory=dict)  # headline figures (traces/summary.py)
    # What this run could not keep or show: a recovered kill, non-finite numbers written as null, a
    # stream that could not be written (traces/losses.py adds what other sections say).
    losses: list[str] = field(default_factory=list)
    recovered: dict[str, Any] | None = None  # what traces/recovery.py kept of a killed run
    # What the run's end left to the first reader (traces/tables.py): "tables" (the streams into
    # the tables), "steps" (the step spans from the hooks), "pyisession"; empty once it is done.
    pending: list[str] = field(default_factory=list)
    sections: dict[str, Any] = field(default_factory=dict)  # other observers' sections, unknown fields

    def set_section(self, name: str, data: dict[str, Any]) -> None:
        """Stores what observer `name` returned: a typed field where the record has one."""
        if name == "telemetry":
            self.telemetry = _load(Telemetry, data, "telemetry")
        elif name == "profiler":
            self.profiler = data
        else:
            self.sections[name] = data

    def section(self, name: str) -> dict[str, Any]:
        """An observer's section without a typed field (`sync_hooks`, ...); {} when absent."""
        value = self.sections.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def label(self) -> str:
        """The run in a few words: "mlx_gpu / seed / synthetic", or the script's name."""
        cfg = self.config
        if self.script is not None:
            parts = [self.script.name, self.backend.name]
        else:
            parts = [self.backend.name or cfg.get("backend", "?")]
            if cfg.get("loop"):
                parts.append(cfg["loop"])
            if cfg.get("sync"):  # only when --sync overrode the loop's own policy
                parts.append(f"sync {cfg['sync']}")
            parts.append(cfg.get("dataset") or (self.dataset.name if self.dataset else ""))
        return " / ".join(str(p) for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        sections = data.pop("sections")
        return {**data, **{k: v for k, v in sections.items() if k not in data}}


def write_record(run_dir: Path, record: RunRecord) -> None:
    write_json(run_dir / schema.RUN_JSON, record.to_dict())


def read_record(run_dir: Path) -> RunRecord:
    """The record of `run_dir`, validated; RunDirError (one line) for a missing or bad file."""
    path = run_dir / schema.RUN_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{run_dir}: no {schema.RUN_JSON}, so this is not a cnnprof run directory") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc}); the run directory is corrupt") from None
    if not isinstance(data, dict) or "t0_perf_ns" not in data:
        raise RunDirError(f"{path}: not a cnnprof run.json (no t0_perf_ns)")
    version = data.get("schema_version", 0)
    if not isinstance(version, int) or version > schema.SCHEMA_VERSION:
        raise RunDirError(
            f"{path}: schema_version {version} is newer than this cnnprof reads "
            f"({schema.SCHEMA_VERSION}); upgrade cnnprof"
        )
    if version < 2:
        data = _upgrade_v1(data)
    try:
        record = _load(RunRecord, data, "")
    except _Invalid as exc:
        raise RunDirError(f"{path}: {exc}; the run directory is corrupt or from another tool") from None
    for name, value, known in (("kind", record.kind, KINDS), ("status", record.status, schema.STATUSES)):
        if value not in known:
            raise RunDirError(f"{path}: {name} {value!r} is none of {', '.join(known)}; upgrade cnnprof")
    return record


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Versions 0 and 1 kept a script's target in `config` and its exit code at the top level."""
    data = dict(data)
    cfg = dict(data.get("config") or {})
    if data.get("kind") == "script" and not data.get("script"):
        target = cfg.pop("target", None) or cfg.pop("script", None)
        argv = cfg.pop("args", None) or cfg.pop("script_argv", None) or []
        data["script"] = {
            "path": target or "?",
            "module": bool(cfg.pop("module", False)),
            "argv": argv,
            "exit_code": data.pop("exit_code", None),
        }
    data["config"] = cfg
    for key in ("backend", "host", "telemetry"):  # {} and null both meant "nothing known"
        if not data.get(key):
            data.pop(key, None)
    for key in ("dataset", "model"):
        if not data.get(key):
            data[key] = None
    data["schema_version"] = schema.SCHEMA_VERSION
    return data


# -- validation -------------------------------------------------------------------------------
class _Invalid(Exception):
    pass


_T = typing.TypeVar("_T")


def _load(cls: type[_T], data: Any, where: str) -> _T:
    """Builds dataclass `cls` from a JSON dict, checking each field's type; unknown keys go to
    the class's `sections` field if it has one, and are dropped otherwise."""
    if not isinstance(data, dict):
        raise _Invalid(f"{where.rstrip('.') or 'the file'} should be an object, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == "sections" or f.name not in data:
            continue
        kwargs[f.name] = _check(data[f.name], hints[f.name], f"{where}{f.name}")
    if "sections" in names:
        kwargs["sections"] = {k: v for k, v in data.items() if k not in names}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise _Invalid(f"{where.rstrip('.') or 'the file'}: {exc}") from None


def _check(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        (inner,) = [t for t in options if t is not type(None)]
        return _check(value, inner, where)
    if dataclasses.is_dataclass(tp):
        return _load(tp, value, f"{where}.")  # type: ignore[arg-type]
    if tp is Any:
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise _Invalid(f"{where} should be a list, not {type(value).__name__}")
        return [_check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, item = typing.get_args(tp)
        if not isinstance(value, dict):
            raise _Invalid(f"{where} should be an object, not {type(value).__name__}")
        return {str(k): _check(v, item, f"{where}.{k}") for k, v in value.items()}
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
    }[tp]
    if not ok:
        raise _Invalid(f"{where} should be {tp.__name__}, not {type(value).__name__} {value!r:.40}")
    return float(value) if tp is float else value
