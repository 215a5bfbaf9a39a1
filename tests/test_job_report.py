"""`cnnprof report` and `cnnprof diagnose` on a constructed job directory: one page with a lane group
per rank on one time axis, the per-rank step-time table, the job's findings and its verdict rank."""

from __future__ import annotations

import json
import re
from pathlib import Path

from job_runs import make_job

from cnnprof.cli import main


def _figure(html: str) -> dict:
    data = json.loads(re.search(r'<script type="application/json" id="cnnprof-data">(.*?)</script>', html, re.S)[1])
    return data["figures"]["job-timeline"]


def test_job_report_has_a_lane_group_per_rank_and_the_step_table(tmp_path: Path) -> None:
    job = make_job(tmp_path / "job", {0: 30.0, 1: 30.0}, extra_ms={1: 120.0})
    assert main(["report", str(job)]) == 0
    html = (job / "report.html").read_text()
    figure = _figure(html)
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    assert any("rank 0 (host-a)" in t for t in titles) and any("rank 1 (host-a)" in t for t in titles)
    lanes = {t["yaxis"] for t in figure["data"] if t.get("meta") != "overview"}
    assert len(lanes) == 2  # one y axis per rank's lane
    # rank 0's all_reduce bars are long (it waits), rank 1's short, on the same x axis
    reduce = {t["yaxis"]: max(t["x"]) for t in figure["data"] if "all_reduce" in t.get("name", "")}
    assert reduce[min(reduce)] > reduce[max(reduce)]
    assert "Step time per rank" in html and "rank-imbalance" in html
    assert "the slow rank (rank-imbalance)" in html  # the verdict is taken from rank 1


def test_diagnose_on_a_job_directory(tmp_path: Path, capfd) -> None:
    job = make_job(tmp_path / "job", {0: 30.0, 1: 30.0}, extra_ms={1: 120.0})
    assert main(["diagnose", str(job), "--json"]) == 0
    out = json.loads(capfd.readouterr().out)
    assert out["verdict"]["rank"] == 1
    assert [f["id"] for f in out["findings"]] == ["rank-imbalance"]
    assert set(out["ranks"]) == {"0", "1"}
    assert main(["diagnose", str(job)]) == 0
    text = capfd.readouterr().err  # the terminal output goes to stderr, stdout is for --json
    assert "2 of 2 ranks" in text and "rank-imbalance" in text
