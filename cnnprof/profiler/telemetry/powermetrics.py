"""macOS `powermetrics`: CPU clusters and cores, GPU, ANE and package power, thermal pressure.

`sudo -n powermetrics --samplers cpu_power,gpu_power,thermal -f plist -i MS` writes one plist
document per window to stdout (documents 2..N preceded by a NUL). `PowermetricsParser` turns that
byte stream, in chunks cut anywhere, into samples; `PowermetricsSource` runs the command for the
sampler; `parse_powermetrics_command` summarises a saved capture for `cnnprof telemetry
parse-powermetrics`. Format facts: tests/fixtures/powermetrics/README.md.

Choices worth knowing:
- A sample's rows are stamped when its document arrives (the end of its window); each sample also
  has `window_ms` (its `elapsed_ns`), so energy can be integrated over the window it averages.
- Power comes from `processor.*_power` (mW, window averages). With the `gpu_power` sampler alone
  there is no `processor` dict: `gpu_power_w` is then `gpu.gpu_energy` (mJ) over the window.
- Cluster-level `freq_hz`/`idle_ratio` are unreliable on M2/M3, so every cluster figure is derived
  from its cores: active % = mean of the cores' busy %, MHz = busy-weighted mean of the cores' MHz.
- A cluster is an E or P cluster by the first letter of its name; others (`M0-Cluster`,
  `S-Cluster` on M5) keep their `cluster.<name>.*` rows but stay out of the E/P aggregates.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import plistlib
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ...errors import UserError
from .base import MetricTable, SourceConfig, SourceStatus, describe, unavailable
from .piped import PipedSource

log = logging.getLogger(__name__)

# Overrides the powermetrics executable (default: found on PATH). Set, it also lifts the macOS
# check: tests and demos replay recordings through a stand-in on Linux.
EXECUTABLE_ENV = "CNNPROF_POWERMETRICS"
SAMPLERS = "cpu_power,gpu_power,thermal"

METRICS: MetricTable = {
    "cpu_power_w": ("W", "CPU power, average over the window"),
    "gpu_power_w": ("W", "GPU power, average over the window"),
    "ane_power_w": ("W", "Neural Engine power, average over the window"),
    "combined_power_w": ("W", "CPU + GPU + ANE power, average over the window"),
    "gpu_freq_mhz": ("MHz", "GPU frequency, average over the window"),
    "gpu_active_pct": ("%", "GPU active residency (1 - idle ratio)"),
    "e_cluster_active_pct": ("%", "E cores: mean busy % over all E-cluster cores"),
    "p_cluster_active_pct": ("%", "P cores: mean busy % over all P-cluster cores"),
    "e_cluster_freq_mhz": ("MHz", "E cores: busy-weighted mean frequency"),
    "p_cluster_freq_mhz": ("MHz", "P cores: busy-weighted mean frequency"),
    "cluster.*.active_pct": ("%", "one CPU cluster: mean busy % of its cores"),
    "cluster.*.freq_mhz": ("MHz", "one CPU cluster: busy-weighted mean frequency of its cores"),
    "core.*.active_pct": ("%", "one CPU core: busy % (1 - idle ratio)"),
    "core.*.freq_mhz": ("MHz", "one CPU core: average frequency"),
    "thermal_pressure_level": ("level", "0 Nominal, 1 Moderate, 2 Heavy, 3 Trapping, 4 Sleeping"),
    "window_ms": ("ms", "length of the window the sample averages (it ends at the row's time)"),
}

THERMAL_LEVELS = {"Nominal": 0, "Moderate": 1, "Heavy": 2, "Trapping": 3, "Sleeping": 4}

_END = b"</plist>"
# The frequency-residency tables are most of a document's bytes and of plistlib's time (9 ms for
# an M2 Ultra document; 1.7 ms without them) and nothing here reads them. The pattern never crosses
# an array's start or end, so a table it cannot match is simply left for plistlib.
_UNUSED_TABLES = re.compile(
    rb"<key>(?:dvfm_states|requested_freq|sw_requested_state|sw_state)</key>\s*"
    rb"<array>[^<]*(?:<(?!/?array)[^<]*)*</array>"
)


class DocumentSplitter:
    """Cuts a powermetrics plist stream, fed in chunks cut anywhere, into whole documents.

    A document ends with `</plist>`; a NUL before that means the document was cut short (the
    writer died mid-document): that fragment is counted in `truncated` and dropped.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scan = 0  # positions before this were searched already
        self.truncated = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buf += chunk
        docs: list[bytes] = []
        while True:
            end = self._buf.find(_END, self._scan)
            nul = self._buf.find(b"\0", self._scan, end if end != -1 else len(self._buf))
            if nul != -1:
                self._drop_fragment(nul)
            elif end != -1:
                cut = end + len(_END)
                doc = bytes(self._buf[:cut]).lstrip()  # the newline before a NUL-less document
                del self._buf[:cut]
                self._scan = 0
                docs.append(doc)
            else:
                self._scan = max(0, len(self._buf) - len(_END) + 1)
                return docs

    def close(self) -> None:
        """End of stream: what is left is the unfinished last document, if anything."""
        self._drop_fragment(len(self._buf))

    def _drop_fragment(self, stop: int) -> None:
        if self._buf[:stop].strip():
            self.truncated += 1
            log.warning("skipped a truncated powermetrics document (%d bytes)", stop)
        del self._buf[: stop + 1]
        self._scan = 0


@dataclass(frozen=True)
class PowermetricsSample:
    elapsed_ns: int | None  # the window's length
    values: dict[str, float]


class PowermetricsParser:
    """Bytes in (any chunking), samples out; a broken document is skipped and counted."""

    def __init__(self) -> None:
        self._splitter = DocumentSplitter()
        self.unparsable = 0

    @property
    def skipped(self) -> int:
        return self._splitter.truncated + self.unparsable

    def feed(self, chunk: bytes) -> list[PowermetricsSample]:
        return [s for doc in self._splitter.feed(chunk) if (s := self._parse(doc)) is not None]

    def close(self) -> None:
        self._splitter.close()

    def _parse(self, doc: bytes) -> PowermetricsSample | None:
        try:
            data = plistlib.loads(_UNUSED_TABLES.sub(b"", doc))
            if not isinstance(data, dict):
                raise ValueError(f"top level is a {type(data).__name__}, not a dict")
            elapsed = data.get("elapsed_ns")
            elapsed_ns = int(elapsed) if _is_number(elapsed) and elapsed > 0 else None
            return PowermetricsSample(elapsed_ns, sample_values(data, elapsed_ns))
        except Exception as exc:  # expat, plistlib and value errors alike: skip, never stop
            self.unparsable += 1
            log.warning("skipped an unreadable powermetrics document (%s: %s)", type(exc).__name__, exc)
            return None


def _is_number(value: Any) -> bool:
    """A finite number that fits a float: plist `<real>inf</real>`, `nan` and an `<integer>`
    past 1e308 are none (each is left out, like a missing key)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _num(d: Any, key: str) -> float | None:
    value = d.get(key) if isinstance(d, dict) else None
    return float(value) if _is_number(value) else None


def _busy(idle_ratio: float | None) -> float | None:
    return None if idle_ratio is None else min(1.0, max(0.0, 1.0 - idle_ratio))


def _cluster_key(name: str) -> str:
    short = name[: -len("-Cluster")] if name.endswith("-Cluster") else name
    return re.sub(r"[^A-Za-z0-9_-]", "_", short) or "unnamed"


def _aggregate(cores: list[tuple[float | None, float | None]], prefix: str, out: dict[str, float]) -> None:
    """`prefix`active_pct and `prefix`freq_mhz from (busy 0..1, MHz) per core."""
    busy = [b for b, _ in cores if b is not None]
    if busy:
        out[f"{prefix}active_pct"] = 100.0 * sum(busy) / len(busy)
    both = [(b, f) for b, f in cores if b is not None and f is not None]
    weight = sum(b for b, _ in both)
    if weight > 0:
        out[f"{prefix}freq_mhz"] = sum(b * f for b, f in both) / weight
    elif freqs := [f for _, f in cores if f is not None]:
        out[f"{prefix}freq_mhz"] = sum(freqs) / len(freqs)  # all idle: no weights, plain mean


def sample_values(doc: dict[str, Any], elapsed_ns: int | None) -> dict[str, float]:
    """The metrics of one parsed document; whatever key is missing is simply left out."""
    out: dict[str, float] = {}
    if elapsed_ns:
        out["window_ms"] = elapsed_ns / 1e6
    processor = doc.get("processor") if isinstance(doc.get("processor"), dict) else {}
    for key in ("cpu_power", "gpu_power", "ane_power", "combined_power"):
        if (mw := _num(processor, key)) is not None:
            out[f"{key}_w"] = mw / 1000.0
    gpu = doc.get("gpu") if isinstance(doc.get("gpu"), dict) else {}
    if "gpu_power_w" not in out and elapsed_ns and (mj := _num(gpu, "gpu_energy")) is not None:
        out["gpu_power_w"] = mj * 1e6 / elapsed_ns  # mJ / ns -> W
    if (mhz := _num(gpu, "freq_hz")) is not None:
        out["gpu_freq_mhz"] = mhz  # named Hz, reported in MHz
    if (busy := _busy(_num(gpu, "idle_ratio"))) is not None:
        out["gpu_active_pct"] = 100.0 * busy

    by_kind: dict[str, list[tuple[float | None, float | None]]] = {"e": [], "p": []}
    clusters = processor.get("clusters")
    for cluster in clusters if isinstance(clusters, list) else []:
        if not isinstance(cluster, dict):
            continue
        name = cluster.get("name") if isinstance(cluster.get("name"), str) else "unnamed"
        cores: list[tuple[float | None, float | None]] = []
        cpus = cluster.get("cpus")
        for cpu in cpus if isinstance(cpus, list) else []:
            index = cpu.get("cpu") if isinstance(cpu, dict) else None
            if not _is_number(index):
                continue
            busy = _busy(_num(cpu, "idle_ratio"))
            hz = _num(cpu, "freq_hz")
            mhz = None if hz is None else hz / 1e6
            if busy is not None:
                out[f"core.{int(index)}.active_pct"] = 100.0 * busy
            if mhz is not None:
                out[f"core.{int(index)}.freq_mhz"] = mhz
            cores.append((busy, mhz))
        _aggregate(cores, f"cluster.{_cluster_key(name)}.", out)
        kind = name[:1].lower()
        if kind in by_kind:
            by_kind[kind] += cores
    for kind, cores in by_kind.items():
        _aggregate(cores, f"{kind}_cluster_", out)

    pressure = doc.get("thermal_pressure")
    if isinstance(pressure, str) and pressure in THERMAL_LEVELS:
        out["thermal_pressure_level"] = float(THERMAL_LEVELS[pressure])
    return out


def _sudoers_fix(executable: str) -> str:
    return f'echo "$USER ALL=(root) NOPASSWD: {executable}" | sudo tee /etc/sudoers.d/cnnprof'


class PowermetricsSource(PipedSource):
    """Runs powermetrics as a child process (piped.py reads its stdout as documents arrive)."""

    name = "powermetrics"

    def __init__(
        self,
        config: SourceConfig,
        *,
        require_macos: bool = True,
        executable: str | None = None,
        sudo: bool | None = None,
    ) -> None:
        super().__init__(config)
        self.metrics = dict(METRICS)
        self._require_macos = require_macos
        self._executable = executable
        self._sudo = os.geteuid() != 0 if sudo is None else sudo  # root needs no sudo
        self._parser = PowermetricsParser()

    def command(self) -> tuple[list[str], str] | SourceStatus:
        """(command line, absolute path of powermetrics), or why there is none."""
        override = self._executable or os.environ.get(EXECUTABLE_ENV)
        if self._require_macos and not override and sys.platform != "darwin":
            return unavailable("powermetrics exists only on macOS")
        found = shutil.which(override or "powermetrics")
        if found is None:
            return unavailable(f"{override or 'powermetrics'} not found on PATH")
        # sudo resolves names with its own secure_path: give it the absolute path.
        executable = os.path.abspath(found)
        args = [executable, "--samplers", SAMPLERS, "-f", "plist", "-i", str(self.config.interval_ms)]
        if not self._sudo:
            return args, executable
        sudo = shutil.which("sudo")
        if sudo is None:
            return unavailable("sudo not found, and powermetrics needs root", "run cnnprof as root")
        return [sudo, "-n", *args], executable

    def probe(self) -> SourceStatus:
        resolved = self.command()
        if isinstance(resolved, SourceStatus):
            return resolved
        cmd, executable = resolved
        why = self.start(cmd)  # sudo -n without a rule fails at once
        if why is None:
            return SourceStatus(True)
        if cmd[0] == executable:
            return unavailable(f"powermetrics failed: {why}")
        return unavailable(f"sudo -n powermetrics failed: {why}", _sudoers_fix(executable))

    def feed(self, chunk: bytes) -> list[dict[str, float]]:
        return [sample.values for sample in self._parser.feed(chunk)]

    def end_of_stream(self) -> None:
        self._parser.close()


def parse_capture(data: bytes) -> tuple[list[tuple[float, dict[str, float]]], int]:
    """A saved capture -> ([(t_s at the window's end, values)], skipped documents). Time runs
    from the first window's start by the cumulative `elapsed_ns` (a missing one counts as 0)."""
    parser = PowermetricsParser()
    samples = parser.feed(data)
    parser.close()
    out: list[tuple[float, dict[str, float]]] = []
    elapsed_total = 0
    for sample in samples:
        elapsed_total += sample.elapsed_ns or 0
        out.append((elapsed_total / 1e9, sample.values))
    return out, parser.skipped


def parse_powermetrics_command(path: Path, csv_out: bool, out: TextIO) -> int:
    """`cnnprof telemetry parse-powermetrics FILE [--csv]`: a summary table, or with `csv_out`
    the rows `t_s,metric,value`. Returns the exit code."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(
            f"{path}: cannot read ({exc.strerror or exc}); pass a file saved from `powermetrics -f plist`"
        ) from None
    samples, skipped = parse_capture(data)
    if not samples:
        raise UserError(
            f"{path}: no powermetrics plist documents in it; record one with "
            "`sudo powermetrics -f plist -i 1000 -n 5 > FILE`"
        )
    if csv_out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["t_s", "metric", "value"])
        for t_s, values in samples:
            writer.writerows([f"{t_s:.6f}", metric, repr(value)] for metric, value in values.items())
        return 0
    # rich is imported here, not at the top, so that the sampler process never loads it.
    from rich.console import Console
    from rich.table import Table

    series: dict[str, list[float]] = {}
    for _, values in samples:
        for metric, value in values.items():
            series.setdefault(metric, []).append(value)
    console = Console(file=out, width=100)
    skipped_note = f", {skipped} broken documents skipped" if skipped else ""
    console.print(
        f"{path}: {len(samples)} windows over {samples[-1][0]:.3f} s{skipped_note}",
        markup=False,
        soft_wrap=True,
    )
    table = Table()
    for column in ("metric", "n", "min", "mean", "max", "unit"):
        table.add_column(column, justify="left" if column in ("metric", "unit") else "right")
    for metric, values in series.items():
        unit = (describe(METRICS, metric) or ("", ""))[0]
        table.add_row(
            metric,
            str(len(values)),
            f"{min(values):.4g}",
            f"{sum(values) / len(values):.4g}",
            f"{max(values):.4g}",
            unit,
        )
    console.print(table)
    return 0
