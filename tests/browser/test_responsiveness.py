"""The page never freezes (issue 8): no main-thread task over 50 ms once the first frame is drawn,
at learning rate 10, with a 100,000-epoch history and with the largest net; the log-scale charts
never see a value their axis cannot draw; both charts show their values on hover.

Two records, both from the first drawn frame on (the page's load: modules, the registry,
building the diagram, ends with that frame and is not counted):
- Chrome's long tasks (PerformanceObserver 'longtask', buffered, installed before the page's
  scripts run): a task that took over 50 ms of wall time.
- A Chrome trace of the page's main thread: the CPU time of every task.
The assertion is on the page's own work: no task with more than 50 ms of main-thread CPU. Wall
time also counts the time the thread waited for a core, which on this 2-core machine depends on
the training worker (a full core at max speed) and on whatever else runs; the observer's long
tasks are printed with a failure to read it by.
"""

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, Page, Playwright

from tests.browser.conftest import launch_chromium

pytestmark = pytest.mark.browser

# Installed before any of the page's scripts: every long task of the page, with its start (ms
# since navigation) and duration. Chrome reports a task as long from 50 ms on.
LONG_TASKS = """
window.longTasks = [];
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    window.longTasks.push({ start: entry.startTime, duration: entry.duration });
  }
}).observe({ type: 'longtask', buffered: true });
"""
# The largest net the settings allow: 7 features, 8 hidden layers of 16 (1,920 links).
LARGEST_NET = (
    "dataset=spiral&speed=null&features=x1,x2,x1_sq,x2_sq,x1x2,sin_x1,sin_x2&layers="
    + ",".join(["16:tanh:0:0"] * 8)
)
# What uPlot's log axis is given at most and at least (static/js/views/chart_scale.js).
LOG_FLOOR = 1e-12
LOG_CEIL = 1e12


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    """A Chromium of this module's own, as a learner's is: the traces measure the page, not what
    ~150 earlier tests' pages left in the session's browser."""
    browser = launch_chromium(playwright_instance)
    yield browser
    browser.close()


def open_page(page: Page, base_url: str, fragment: str) -> None:
    """Load the page with the long-task observer installed; wait for its first drawn frame."""
    page.add_init_script(LONG_TASKS)
    page.goto(f"{base_url}/#{fragment}")
    page.wait_for_function("() => window.playground && window.playground.stats.firstFrameAt > 0")


def long_tasks_after_first_frame(page: Page) -> list[dict[str, float]]:
    """The long tasks that started after the page drew its first frame: start (ms after that
    frame) and duration."""
    tasks: list[dict[str, float]] = page.evaluate(
        """() => { const first = window.playground.stats.firstFrameAt;
            return window.longTasks.filter((t) => t.start > first)
                .map((t) => ({ after_first_frame: Math.round(t.start - first),
                               duration: t.duration })); }"""
    )
    return tasks


class MainThreadTrace:
    """A Chrome trace of the page from now on (call it after the first drawn frame)."""

    CATEGORY = "disabled-by-default-devtools.timeline"

    def __init__(self, page: Page, path: Path) -> None:
        self.page = page
        self.path = path
        self.browser = page.context.browser
        assert self.browser is not None
        self.browser.start_tracing(page=page, path=str(path), categories=[self.CATEGORY])

    def task_cpu_ms(self) -> list[float]:
        """Stop tracing; the CPU ms of every task of the page's main thread meanwhile."""
        assert self.browser is not None
        self.browser.stop_tracing()
        events = json.loads(self.path.read_text())["traceEvents"]
        main = {
            (e["pid"], e["tid"])
            for e in events
            if e.get("name") == "thread_name" and e["args"].get("name") == "CrRendererMain"
        }
        return [
            e.get("tdur", 0) / 1000
            for e in events
            if e.get("name") == "RunTask" and e.get("ph") == "X" and (e["pid"], e["tid"]) in main
        ]

    def assert_never_froze(self) -> None:
        """No task of more than 50 ms of main-thread CPU since the trace began."""
        cpu = self.task_cpu_ms()
        assert len(cpu) > 100, "the trace holds too few tasks to say anything"
        worst = sorted(cpu)[-5:]
        assert worst[-1] <= 50, (
            f"main-thread tasks of {worst} ms CPU; long tasks (wall) after the first frame: "
            f"{long_tasks_after_first_frame(self.page)}; load average {os.getloadavg()}"
        )


def play_for(page: Page, ms: int) -> None:
    """Train for `ms` milliseconds, then pause and wait for the paused frame to be drawn."""
    page.evaluate("() => window.playground.command({ type: 'play' })")
    page.wait_for_function("() => window.playground.frame.header.status === 'running'")
    page.wait_for_timeout(ms)
    page.evaluate("() => window.playground.command({ type: 'pause' })")
    page.wait_for_function("() => window.playground.frame.header.status === 'paused'")


def import_long_session(page: Page, base_url: str, epochs: int) -> tuple[str, str]:
    """A circle session whose history holds `epochs` rows: three real epochs, exported, with the
    history stretched to `epochs` rows of smooth synthetic curves and imported; (token, id)."""
    created = page.request.post(f"{base_url}/api/sessions", data={"dataset": "circle",
                                                                  "speed": None})
    assert created.ok, created.text()
    token, session_id = created.json()["owner_token"], created.json()["id"]
    auth = {"Authorization": f"Bearer {token}"}
    page.request.post(f"{base_url}/api/sessions/{session_id}/commands",
                      data={"type": "step", "n": 3}, headers=auth)
    export = page.request.get(f"{base_url}/api/sessions/{session_id}/export", headers=auth).json()
    decay = np.exp(-np.arange(epochs) / (epochs / 5))
    export["history"] = {
        name: (0.05 + column[0] * decay + 0.01 * np.sin(np.arange(epochs) / 50)).tolist()
        for name, column in export["history"].items()
    }
    export["epoch"] = epochs
    imported = page.request.post(f"{base_url}/api/sessions/import", data=export, headers=auth,
                                 timeout=60_000)
    assert imported.ok, imported.text()[:500]
    return token, imported.json()["id"]


def chart_state(page: Page, chart: str) -> dict[str, Any]:
    """A chart's plotted data, its y scale and what the history it draws holds."""
    result: dict[str, Any] = page.evaluate(
        """(chart) => { const pg = window.playground, view = pg.views[chart];
            const history = chart === 'gradChart' ? pg.curves.grads : pg.curves.losses;
            return { data: view.plot.data, ymin: view.plot.scales.y.min,
                     ymax: view.plot.scales.y.max, history: history.columns }; }""",
        chart,
    )
    return result


def test_learning_rate_10_never_freezes_the_page(
    page: Page, live_server: str, page_errors: list[str], tmp_path: Path
) -> None:
    """XOR at learning rate 10: the first layer's gradient norm vanishes below 1e-12 (float32
    reaches 1e-31, and 0), which sent uPlot's log axis into a tick loop of tens of seconds ending
    in "RangeError: Invalid array length". Now the chart is given values clamped to [1e-12, 1e12],
    keeps following the epochs, and no task takes over 50 ms."""
    open_page(page, live_server, "dataset=xor&learning_rate=10&speed=null")
    trace = MainThreadTrace(page, tmp_path / "trace.json")
    page.evaluate("() => window.playground.command({ type: 'play' })")
    # The run reaches the values that froze the page (the cause, not only the symptom).
    page.wait_for_function(
        f"""() => window.playground.curves.grads.columns.slice(1)
                .some((norms) => norms.some((v) => v !== null && v < {LOG_FLOOR}))""",
        timeout=30_000,
    )
    page.wait_for_timeout(3_000)
    play_for(page, 100)  # pause: the paused frame redraws the charts at once
    grads = chart_state(page, "gradChart")
    plotted = [v for column in grads["data"][1:] for v in column if v is not None]
    assert min(plotted) >= LOG_FLOOR and max(plotted) <= LOG_CEIL
    assert grads["ymin"] >= LOG_FLOOR and grads["ymax"] <= LOG_CEIL
    # The x axis follows the counter: the chart's last epoch is the newest one recorded.
    assert grads["data"][0] == grads["history"][0]
    assert grads["data"][0][-1] > 1000
    last_epoch = page.evaluate("() => window.playground.frame.header.epoch")
    assert last_epoch - grads["data"][0][-1] < 2 * page.evaluate(
        "() => window.playground.curves.grads.stride"
    )
    trace.assert_never_froze()
    assert page_errors == []


def test_a_100000_epoch_history_never_freezes_the_page(
    page: Page, live_server: str, page_errors: list[str], tmp_path: Path
) -> None:
    """A session with a 100,000-epoch history (imported: training it here took ~50 s of the
    suite), then watched by the page: its hello carries all 100,000 rows (rows-only frames ahead
    of the first drawn one). The curves stay bounded and no task takes over 50 ms, neither
    receiving the history nor training on from it."""
    token, session_id = import_long_session(page, live_server, 100_000)

    # The page holds the creator's token (as the learner's own browser would): it owns both.
    page.add_init_script(f"localStorage.setItem('nn-playground.owner', {json.dumps(token)})")
    open_page(page, live_server, "speed=null")
    trace = MainThreadTrace(page, tmp_path / "trace.json")
    opened = page.evaluate(
        """async (id) => { const api = await import('/static/js/api.js');
            return window.playground.openSession(() => api.fetchSession(id)); }""",
        session_id,
    )
    assert opened, page.locator("#error").inner_text()
    page.wait_for_function(
        "(id) => window.playground.frame.header.session_id === id"
        " && window.playground.lastEpoch === 100000",
        arg=session_id,
        timeout=60_000,
    )
    # Every epoch of the hello went into the curves, on a stride that keeps them short.
    losses = page.evaluate(
        "() => ({ first: window.playground.losses.columns[0][0],"
        " length: window.playground.losses.length, stride: window.playground.losses.stride })"
    )
    assert losses["first"] == 1 and losses["length"] <= 1000 and losses["stride"] >= 128
    play_for(page, 2_000)
    assert page.evaluate("() => window.playground.lastEpoch") > 100_000
    trace.assert_never_froze()
    assert page_errors == []


def test_the_largest_net_never_freezes_the_page(
    page: Page, live_server: str, page_errors: list[str], tmp_path: Path
) -> None:
    """8 hidden layers of 16 on 7 features, training as fast as the machine goes for 5 s: every
    frame's drawing stays under 50 ms of main-thread time."""
    open_page(page, live_server, LARGEST_NET)
    assert page.locator("path.link").count() == 7 * 16 + 7 * 16 * 16 + 16
    trace = MainThreadTrace(page, tmp_path / "trace.json")
    play_for(page, 5_000)
    assert page.evaluate("() => window.playground.stats.drawn") > 20
    trace.assert_never_froze()
    assert page_errors == []


def hover_values(page: Page, chart: str, element: str) -> dict[str, Any]:
    """Hover the middle of a chart's plot; return the hovered index and the legend's texts."""
    box = page.locator(f"#{element} .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function(f"() => window.playground.views.{chart}.plot.cursor.idx !== null")
    result: dict[str, Any] = page.evaluate(
        """([chart, element]) => { const view = window.playground.views[chart];
            const rows = [...document.querySelectorAll(`#${element} .u-legend .u-series`)];
            return { idx: view.plot.cursor.idx, raw: view.raw,
                     labels: rows.map((r) => r.querySelector('.u-label').textContent),
                     values: rows.map((r) => r.querySelector('.u-value').textContent) }; }""",
        [chart, element],
    )
    return result


def test_hovering_the_charts_shows_every_series_value(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """60 stepped epochs: hovering the gradient chart shows the epoch and every layer's norm at
    that epoch (the history's own values, to 4 significant digits); the loss chart likewise."""
    open_page(page, live_server, "speed=null")
    page.evaluate("() => window.playground.command({ type: 'step', n: 60 })")
    page.wait_for_function(
        "() => window.playground.frame.header.epoch === 60"
        " && window.playground.views.gradChart.plot.data[0].length === 60"
    )
    grads = hover_values(page, "gradChart", "grad-chart")
    assert grads["labels"] == ["Epoch", "layer 1", "layer 2", "output"]
    idx = grads["idx"]
    assert grads["values"][0] == str(grads["raw"][0][idx]) == str(idx + 1)
    for series in range(1, 4):
        shown = float(grads["values"][series])
        exact = grads["raw"][series][idx]
        assert exact > 0
        assert shown == pytest.approx(exact, rel=5e-4), (series, shown, exact)
    losses = hover_values(page, "lossChart", "loss-chart")
    assert losses["labels"] == ["Epoch", "Train", "Test"]
    idx = losses["idx"]
    assert losses["values"][0] == str(idx + 1)
    for series in (1, 2):
        assert float(losses["values"][series]) == pytest.approx(
            losses["raw"][series][idx], rel=5e-4
        )
    assert page_errors == []


def test_the_gradient_chart_clamps_what_its_log_axis_cannot_draw(
    page: Page, live_server: str
) -> None:
    """Norms of 0, 1e-31 and 1e20 (a vanished and an exploding gradient) reach the chart as 1e-12
    and 1e12; the legend still says the real values. Without the clamp uPlot's log axis never
    finishes drawing this chart."""
    page.goto(f"{live_server}/health")  # any page of the server: modules load same-origin
    result = page.evaluate(
        """async () => {
            const { SeriesHistory } = await import('/static/js/history.js');
            const { GradChartView } = await import('/static/js/views/gradchart.js');
            const element = document.createElement('div');
            document.body.append(element);
            const history = new SeriesHistory(2);
            history.append(1, [0, 0.5]);
            history.append(2, [1e-31, 1e20]);
            history.append(3, [0.25, 2]);
            const view = new GradChartView(element);
            view.update(['layer 1', 'output'], history);
            await new Promise((done) => setTimeout(done, 50));
            view.plot.setCursor({ left: view.plot.valToPos(2, 'x'), top: 10 });
            const values = [...element.querySelectorAll('.u-legend .u-value')]
                .map((v) => v.textContent);
            return { data: view.plot.data, ymin: view.plot.scales.y.min,
                     ymax: view.plot.scales.y.max, values };
        }"""
    )
    assert result["data"] == [[1, 2, 3], [1e-12, 1e-12, 0.25], [0.5, 1e12, 2]]
    assert result["ymin"] == 1e-12 and result["ymax"] == 1e12
    assert result["values"] == ["2", "1.000e-31", "1.000e+20"]
