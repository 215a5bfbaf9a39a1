"""The reports in a real headless Chromium (Debian's /usr/bin/chromium, never a downloaded one):
they load without console errors and without any network request, every plot draws, selecting a
time range updates the panel (call tree, phases, energy as traces/energy.py computes it), and
hostile names stay text.

Set CNNPROF_SCREENSHOTS=1 to (re)write docs/img/report.png and docs/img/compare.png.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from report_runs import HOSTILE_FUNCTION, add_children, make_run

from cnnprof.reports.html import build_report
from cnnprof.traces.energy import energy_by_source
from cnnprof.traces.reader import RunData

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
SCREENSHOTS = bool(os.environ.get("CNNPROF_SCREENSHOTS"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent: `apt-get install chromium` (Debian's build) to run the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        # A fresh profile (user data dir) per run: nothing cached or synced from elsewhere.
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            viewport={"width": 1500, "height": 1000},
            service_workers="block",
        )
        yield context
        context.close()


class Page:
    """A report opened in the browser, with everything it logged and asked for."""

    def __init__(self, context: Any, path: Path, viewport: dict[str, int] | None = None) -> None:
        self.url = path.resolve().as_uri()
        self.page = context.new_page()
        if viewport:
            self.page.set_viewport_size(viewport)
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        # Anything but the page itself would be a network request: refuse it (and it is recorded above).
        self.page.route("**/*", lambda route: route.continue_() if route.request.url == self.url else route.abort())
        self.page.goto(self.url, timeout=120_000)  # generous: a loaded 2-core CI machine parses plotly.js slowly
        self.page.wait_for_function("window.cnnprof && window.cnnprof.ready", timeout=45_000, polling=50)

    def js(self, expr: str, arg: Any = None) -> Any:
        return self.page.evaluate(expr, arg)

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.requests == [self.url]
        assert self.dialogs == []

    def assert_plots_drawn(self, expected: set[str]) -> None:
        drawn = self.js(
            "Array.from(document.querySelectorAll('.plot')).map(d => [d.id, !!d.querySelector('.main-svg')])"
        )
        assert {i for i, _ in drawn} == expected
        assert all(ok for _, ok in drawn), drawn


def _wait_range(page: Page, a: float, b: float) -> None:
    page.page.wait_for_function(
        "([a, b]) => window.cnnprof.range && Math.abs(window.cnnprof.range[0] - a) < 1e-6 && "
        "Math.abs(window.cnnprof.range[1] - b) < 1e-6",
        arg=[a, b],
        timeout=15_000,
        polling=20,
    )


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_run(
        tmp_path_factory.mktemp("runs") / "run",
        epochs=4,
        batches=12,
        batch_ms=60,
        hostile=True,
        sync_share=0.35,
        telemetry=("powermetrics", "procfs"),
        cprofile=True,
    )


def test_run_report_in_chromium(browser: Any, run_dir: Path, tmp_path: Path):
    report = build_report([run_dir], tmp_path / "report.html")
    page = Page(browser, report)
    page.assert_clean()
    page.assert_plots_drawn({"timeline", "fig-epochs", "fig-inference"})
    t_end = page.js("window.cnnprof.data.timeline.t_end_s")

    # The hostile function name is text in the DOM, never an element.
    assert page.js("document.querySelectorAll('img').length") == 0
    assert HOSTILE_FUNCTION in page.page.locator("#sel-funcs").inner_text()
    assert HOSTILE_FUNCTION in page.page.locator("table.hot").inner_text()

    # Selecting a range from the page's side (what a drag ends in) updates the panel.
    tree_before = page.page.locator("#sel-tree").inner_text()
    phases_before = page.page.locator("#sel-phases").inner_text()
    a, b = round(t_end * 0.30, 3), round(t_end * 0.33, 3)
    page.js("([a, b]) => Plotly.relayout(document.getElementById('timeline'), {'xaxis.range': [a, b]})", [a, b])
    _wait_range(page, a, b)
    tree_after = page.page.locator("#sel-tree").inner_text()
    assert tree_after != tree_before and "sampled in the range" in tree_after
    assert page.page.locator("#sel-phases").inner_text() != phases_before
    assert f"{a:.3f} s to {b:.3f} s" in page.page.locator("#sel-title").inner_text()
    # The call tree covers the window: about its length in samples.
    assert page.js("window.cnnprof.treeTotalUs") / 1e6 == pytest.approx(b - a, rel=0.1)

    # Energy of the range, in the page, as traces/energy.py integrates it.
    run = RunData(run_dir)
    for lo, hi in ((a, b), (0.0, t_end), (t_end * 0.1, t_end * 0.8)):
        js = page.js("([a, b]) => window.cnnprof.energy(a, b)", [lo, hi])
        py = energy_by_source(run.telemetry, int(lo * 1e9), int(hi * 1e9))
        assert set(js) == set(py)
        for key in py:
            assert js[key] == pytest.approx(py[key], rel=1e-4, abs=1e-6), key
    assert "powermetrics.gpu_power_w" in page.page.locator("#sel-energy").inner_text()

    # A real drag across a lane (a matched x axis: the event names xaxisN) selects too.
    box = page.js("""(() => { const r = Array.from(document.querySelectorAll('#timeline .nsewdrag'))
        .map(e => e.getBoundingClientRect()).filter(r => r.height > 60)[1];
        return {x: r.x, y: r.y, w: r.width, h: r.height}; })()""")
    page.js("Plotly.relayout(document.getElementById('timeline'), {'xaxis.autorange': true})")
    _wait_range(page, 0.0, t_end)
    # The lane to drag across, scrolled to the middle of the window (the page above it may be tall).
    box = page.js("""(() => { const e = Array.from(document.querySelectorAll('#timeline .nsewdrag'))
        .filter(e => e.getBoundingClientRect().height > 60)[1];
        e.scrollIntoView({block: 'center'});
        const r = e.getBoundingClientRect();
        return {x: r.x, y: r.y, w: r.width, h: r.height}; })()""")
    y = box["y"] + box["h"] / 2
    mouse = page.page.mouse
    mouse.move(box["x"] + box["w"] * 0.5, y)
    mouse.down()
    mouse.move(box["x"] + box["w"] * 0.6, y, steps=5)
    mouse.move(box["x"] + box["w"] * 0.7, y, steps=5)
    mouse.up()
    page.page.wait_for_function(
        "window.cnnprof.range[1] - window.cnnprof.range[0] < 0.5 * window.cnnprof.data.timeline.t_end_s",
        timeout=15_000,
        polling=20,
    )
    lo, hi = page.js("window.cnnprof.range")
    assert lo == pytest.approx(0.5 * t_end, rel=0.1) and hi == pytest.approx(0.7 * t_end, rel=0.1)

    page.assert_clean()
    if SCREENSHOTS:
        page.js(
            "([a, b]) => Plotly.relayout(document.getElementById('timeline'), {'xaxis.range': [a, b]})",
            [round(t_end * 0.42, 3), round(t_end * 0.47, 3)],
        )
        page.page.wait_for_timeout(800)
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(DOCS_IMG / "report.png"), full_page=True)
    page.page.close()


def test_comparison_in_chromium(browser: Any, run_dir: Path, tmp_path: Path):
    mps = make_run(
        tmp_path / "mps",
        epochs=4,
        batches=12,
        batch_ms=45,
        backend="torch_mps",
        seed=5,
        sync_share=0.3,
        telemetry=("powermetrics", "procfs"),
    )
    cpu = make_run(
        tmp_path / "cpu",
        epochs=4,
        batches=12,
        batch_ms=140,
        backend="torch_cpu",
        seed=6,
        sync_share=0.02,
        telemetry=("procfs",),
        samples=False,
    )
    report = build_report([run_dir, mps, cpu], tmp_path / "compare.html")
    page = Page(browser, report)
    page.assert_clean()
    page.assert_plots_drawn({"fig-cmp-epochs", "fig-cmp-inference", "fig-cmp-curves", "fig-cmp-energy"})
    assert page.js("document.querySelectorAll('img').length") == 0
    # Sorting a table is done with text nodes only.
    page.page.locator("table.data th[data-sort]").nth(6).click()
    assert page.page.locator("table.data th[data-dir]").count() == 1
    page.assert_clean()
    if SCREENSHOTS:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        page.page.screenshot(path=str(DOCS_IMG / "compare.png"), full_page=True)
    page.page.close()


def test_partial_run_in_chromium(browser: Any, tmp_path: Path):
    run = make_run(tmp_path / "run", telemetry=(), samples=False, cprofile=False, status="interrupted")
    (run / "inference.parquet").unlink()
    page = Page(browser, build_report([run], tmp_path / "r.html"))
    page.assert_clean()
    page.assert_plots_drawn({"timeline", "fig-epochs"})
    assert "No stack samples in this run" in page.page.locator("#sel-tree").inner_text()
    assert "No power readings" in page.page.locator("#sel-energy").inner_text()
    page.page.close()


WINDOW_1280 = {"width": 1280, "height": 900}


def _assert_fits(page: Page) -> None:
    """No horizontal scroll: not the page, not a table's scroll box."""
    width = page.js("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1] == 1280, width
    boxes = page.js("Array.from(document.querySelectorAll('.scroll')).map(e => [e.scrollWidth, e.clientWidth])")
    assert all(sw <= cw for sw, cw in boxes), boxes


def _cards(page: Page) -> dict[str, str]:
    titles = page.js("Array.from(document.querySelectorAll('.card')).map(c => c.innerText)")
    return {t.split("\n")[0].strip().lower(): t for t in titles}


def test_reports_fit_a_1280_px_window(browser: Any, run_dir: Path, tmp_path: Path):
    from cnnprof.traces.record import Script

    long_path = "/home/someone/projects/a_rather_long_directory_name_for_a_project/train_my_model.py"
    script = make_run(
        tmp_path / "script",
        epochs=1,
        backend="torch_cuda",
        script=Script(path=long_path, argv=["--lr", "0.1", "--data", "/data/" + "x" * 80]),
    )
    cpu = make_run(tmp_path / "cpu", epochs=3, backend="torch_cpu", seed=3, telemetry=("procfs",), samples=False)

    page = Page(browser, build_report([run_dir], tmp_path / "run.html"), WINDOW_1280)
    _assert_fits(page)
    page.page.close()

    page = Page(browser, build_report([script], tmp_path / "script.html"), WINDOW_1280)
    _assert_fits(page)
    cards = _cards(page)
    assert "train_my_model.py" in cards["script"] and "--lr 0.1" in cards["script"]
    assert "torch_cuda" in cards["backend"] and "detected from the script" in cards["backend"]
    assert "Apple M2 GPU" in cards["device"]
    assert "epochs" not in cards
    page.assert_clean()
    page.page.close()

    page = Page(browser, build_report([run_dir, cpu, script], tmp_path / "compare.html"), WINDOW_1280)
    _assert_fits(page)
    page.assert_clean()
    page.page.close()


def test_the_range_panel_counts_every_span(browser: Any, tmp_path: Path):
    import pandas as pd

    run = make_run(tmp_path / "run", epochs=2, batches=12, sync_share=0.3, telemetry=(), samples=False)
    spans = pd.read_parquet(run / "spans.parquet")
    sync = spans["kind"] == "sync"
    short = sync & (spans.index % 2 == 0)
    spans.loc[short, "end_ns"] = spans.loc[short, "start_ns"] + 400  # 0.4 µs: below the page's resolution
    spans.to_parquet(run / "spans.parquet")
    expected = spans[sync].groupby("name").size()
    assert short.sum() > 5
    page = Page(browser, build_report([run], tmp_path / "r.html"))
    t_end = page.js("window.cnnprof.data.timeline.t_end_s")
    page.js("([a, b]) => Plotly.relayout(document.getElementById('timeline'), {'xaxis.range': [a, b]})", [0, t_end])
    _wait_range(page, 0, t_end)
    text = page.page.locator("#sel-phases").inner_text()
    for name, n in expected.items():
        assert f"sync: {name}\t{n:,} spans started in range" in text, text
    page.assert_clean()
    page.page.close()


def test_the_call_tree_shows_one_process_or_all(browser: Any, tmp_path: Path):
    run_dir = make_run(tmp_path / "run", epochs=1, batches=6, telemetry=("procfs",), cprofile=False)
    add_children(run_dir)
    page = Page(browser, build_report([run_dir], tmp_path / "report.html"))
    page.assert_clean()
    lanes = page.js("document.getElementById('timeline').data.map(t => t.meta).filter(m => m.startsWith('process:'))")
    assert sorted(set(lanes)) == ["process:40000", "process:40001"]
    labels = ["main process (pid 4242)", "dataloader worker 0 (pid 40000)", "dataloader worker 1 (pid 40001)"]
    assert page.js("window.cnnprof.processes") == labels
    tree = page.page.locator("#sel-tree")
    everything = page.js("window.cnnprof.treeTotalUs")
    assert all(label in tree.inner_text() for label in labels)  # one root per process

    page.page.select_option("#sel-proc", "1")
    worker = page.js("window.cnnprof.treeTotalUs")
    text = tree.inner_text()
    assert "transform" in text and "__getitem__" in text and labels[0] not in text and labels[2] not in text
    funcs = page.page.locator("#sel-funcs").inner_text()
    assert "transform" in funcs

    page.page.select_option("#sel-proc", "0")
    main = page.js("window.cnnprof.treeTotalUs")
    assert "transform" not in tree.inner_text() and "transform" not in page.page.locator("#sel-funcs").inner_text()
    # the two workers sampled alike: all = main + 2 x one worker
    assert everything == pytest.approx(main + 2 * worker, rel=1e-6)
    assert worker > 0 and main > 0

    page.page.select_option("#sel-proc", "all")
    assert page.js("window.cnnprof.treeTotalUs") == pytest.approx(everything)
    page.assert_clean()
    page.page.close()
