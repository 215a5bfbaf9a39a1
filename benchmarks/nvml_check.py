"""What NVML telemetry showed in one run (issue 3's GPU check).

    python benchmarks/nvml_check.py RUN_DIR

Prints the SM clock and power before training and during it, how often `power_w` rows arrive
(the buffered 20 ms samples), and the GPU energy counter (`energy_j`) against the integral of
`power_w` over the same span.
"""

from __future__ import annotations

import argparse

import numpy as np

from cnnprof.traces.energy import power_series, series_energy
from cnnprof.traces.reader import RunData


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    run = RunData(parser.parse_args().run_dir)
    tel = run.telemetry.query("source == 'nvml'")
    if tel.empty:
        raise SystemExit(f"no nvml rows in {run.path}: {run.meta.get('telemetry', {}).get('sources')}")
    train = run.spans.query("kind == 'train'")
    t_train0, t_train1 = int(train["start_ns"].min()), int(train["end_ns"].max())

    def metric(name: str):
        m = tel.query("metric == @name").sort_values("t_ns")
        return m["t_ns"].to_numpy(), m["value"].to_numpy()

    for name in ("sm_clock_mhz", "power_w", "gpu_util_pct"):
        t, v = metric(name)
        before, during = v[t < t_train0], v[(t >= t_train0) & (t <= t_train1)]
        print(f"{name}: before training median {np.median(before) if len(before) else float('nan'):.0f}, "
              f"during training median {np.median(during):.0f}, max {during.max():.0f} ({len(during)} rows)")
    t, _ = metric("power_w")
    gaps_ms = np.diff(t) / 1e6
    print(f"power_w rows: {len(t)}, median spacing {np.median(gaps_ms):.1f} ms "
          f"({1000 / np.median(gaps_ms):.0f} Hz), p90 {np.percentile(gaps_ms, 90):.1f} ms")
    te, ve = metric("energy_j")
    a, b = te[0], te[-1]
    counter_j = ve[-1] - ve[0]
    integral_j = series_energy(power_series(tel)["nvml.power_w"], int(a), int(b))
    print(f"energy over {(b - a) / 1e9:.1f} s: counter {counter_j:.1f} J, integral of power_w {integral_j:.1f} J, "
          f"ratio {integral_j / counter_j:.3f}")


if __name__ == "__main__":
    main()
