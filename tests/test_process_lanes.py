"""The child processes in the report: a flame-chart lane per child (with its CPU %), the call tree's
data for one process or all, and the input-bound rule's view of the workers' stacks. Runs are
synthetic (report_runs.py) with children written through the real conversion (add_children)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_runs import WORKER_FILE, add_children, make_run

from cnnprof.reports.diagnosis.context import Frame
from cnnprof.reports.diagnosis.workers import work_site
from cnnprof.reports.html import build_report
from cnnprof.reports.timeline import build_timeline
from cnnprof.reports.timeline.lanes import processes
from cnnprof.traces.reader import RunData


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = make_run(tmp_path / "run", epochs=1, batches=6, telemetry=("procfs",), cprofile=False)
    add_children(path)
    return path


def test_each_child_has_a_flame_lane_with_its_cpu(run_dir: Path) -> None:
    run = RunData(run_dir)
    timeline = build_timeline(run)
    for child in run.children:
        traces = [t for t in timeline.figure["data"] if t.get("meta") == f"process:{child.pid}"]
        assert len(traces) == 1
        bars = traces[0]
        assert {"_worker_loop", "__getitem__", "transform", "get"} <= set(bars["text"])
        # transform: 3 ms in every 4, one bar per stretch (depth 2: under _worker_loop, __getitem__)
        widths = [w for w, name in zip(bars["x"], bars["text"]) if name == "transform"]
        assert widths and all(w == pytest.approx(0.003) for w in widths)
        assert all(d == 2 for d, name in zip(bars["y"], bars["text"]) if name == "transform")
    titles = [a["text"] for a in timeline.figure["layout"]["annotations"]]
    assert any("dataloader worker 1 (pid 40001): 75 % CPU over its life" in t for t in titles)
    for child in run.children:  # and its CPU over time, under its flame chart
        (line,) = [t for t in timeline.figure["data"] if t.get("meta") == f"process-cpu:{child.pid}"]
        assert line["y"] and set(line["y"]) == {75.0}
    metas = [t["meta"] for t in timeline.figure["data"]]
    assert metas.index("process-cpu:40000") > metas.index("process:40000")
    assert not [t for t in timeline.figure["data"] if t.get("meta") == "cpu" and "proc." in t["name"]]
    assert any("other threads are not" in n for n in timeline.notes)  # said, not silently missing


def test_a_run_without_children_has_no_process_lanes(tmp_path: Path) -> None:
    timeline = build_timeline(RunData(make_run(tmp_path / "run", epochs=1, cprofile=False)))
    assert not [t for t in timeline.figure["data"] if str(t.get("meta")).startswith("process:")]
    assert timeline.data["procs"] is None


def test_more_children_than_lanes_are_said(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_run(tmp_path / "run", epochs=1, cprofile=False)
    add_children(path, ("pool worker", "pool worker", "pool worker"))
    monkeypatch.setattr(processes, "MAX_LANES", 2)
    timeline = build_timeline(RunData(path))
    assert len({t["meta"] for t in timeline.figure["data"] if t["meta"].startswith("process:")}) == 2
    assert any("the first 2 of 3 child processes have a lane" in n for n in timeline.notes)
    assert len(timeline.data["procs"]["procs"]) == 4  # the call tree still has every process


def test_the_call_tree_data_has_one_root_per_process(run_dir: Path) -> None:
    from test_report import _unpack as unpack

    procs = build_timeline(RunData(run_dir)).data["procs"]
    labels = [label for label, _ in procs["procs"]]
    assert labels == ["main process (pid 4242)", "dataloader worker 0 (pid 40000)", "dataloader worker 1 (pid 40001)"]
    parent = unpack(procs["tree"]["parent"]).tolist()
    func = unpack(procs["tree"]["func"]).tolist()
    names = procs["funcs"]["name"]
    for label, root in procs["procs"]:
        assert parent[root] == -1 and names[func[root]] == label
    # transform sits under a worker's root, never under the main process's
    root_of = {}
    for node, up in enumerate(parent):
        root_of[node] = node if up < 0 else root_of[up]
    worker_roots = {root for label, root in procs["procs"][1:]}
    transform = [n for n in range(len(parent)) if names[func[n]] == "transform"]
    assert transform and {root_of[n] for n in transform} == worker_roots
    assert procs["cats"][procs["funcs"]["cat"][func[procs["procs"][0][1]]]][0] == "process"


def test_the_report_page_has_the_lanes_and_the_process_picker_data(run_dir: Path, tmp_path: Path) -> None:
    html = build_report([run_dir], tmp_path / "report.html").read_text()
    assert "dataloader worker 0 (pid 40000)" in html and WORKER_FILE in html
    assert '"procs"' in html


def frame(function: str, library: bool, file: str = "/home/u/train.py") -> Frame:
    return Frame(function, file, 1, 1, library)


def test_a_worker_sample_is_charged_to_the_innermost_user_frame_under_getitem() -> None:
    loop = frame("_worker_loop", True, "/x/torch/utils/data/_utils/worker.py")
    fetch = frame("_MapDatasetFetcher.fetch", True, "/x/torch/utils/data/_utils/fetch.py")
    getitem = frame("Blurred.__getitem__", False)
    blur = frame("box_blur", False)
    tensor = frame("Tensor.clone", True, "<built-in>")
    assert work_site([loop, fetch, getitem, blur]) == blur
    assert work_site([loop, fetch, getitem, tensor]) == getitem
    assert work_site([loop, frame("Queue.get", True, "/usr/lib/python3/multiprocessing/queues.py")]) is None
    collate = frame("default_collate", True, "/x/torch/utils/data/_utils/collate.py")
    assert work_site([loop, collate]) == collate


def test_the_rules_read_the_children_only_when_one_asks(run_dir: Path) -> None:
    from cnnprof.reports.diagnosis.context import RunView

    run = RunData(run_dir)
    view = RunView(run)
    assert "children" not in vars(run) and "children" not in vars(view)  # building the view read none
    assert [(proc.pid, len(samples.t) > 0) for proc, samples in view.children] == [(40000, True), (40001, True)]
    assert "children" in vars(run)
