"""The page's loss and gradient-norm histories against the server's own record of every epoch."""

import json
from typing import Any

import pytest
from playwright.sync_api import Page, WebSocket

from tests.browser.conftest import owner_headers

pytestmark = pytest.mark.browser

# float32 keeps 24 significant bits: a value sent as float32 is within 2**-24 of it, relatively.
FLOAT32_REL = 2.0**-23
# Epochs stepped in one command: at 2 frames/s the default net trains far more than the
# max_rows_per_frame (160) rows between two frames, so the server sends rows-only frames. With
# 1,000-point histories the stride is then 4 and epoch 3001 = 1 + 750 · 4 is the last point kept.
STEPPED = 3001


def watch_frame_headers(page: Page) -> list[dict[str, Any]]:
    """Collect the JSON header of every binary frame the page receives (decoded here, not by it)."""
    headers: list[dict[str, Any]] = []

    def frame(payload: str | bytes) -> None:
        if isinstance(payload, bytes):
            length = int.from_bytes(payload[:4], "big")
            headers.append(json.loads(payload[4 : 4 + length]))

    def socket(ws: WebSocket) -> None:
        ws.on("framereceived", frame)

    page.on("websocket", socket)
    return headers


def step_and_wait(page: Page, epochs: int) -> None:
    """Step `epochs` epochs from epoch 0 over the page's websocket; wait for the paused frame."""
    page.evaluate(f"() => window.playground.command({{ type: 'step', n: {epochs} }})")
    wait_paused_at(page, epochs)


def wait_paused_at(page: Page, epoch: int) -> None:
    """Wait until the page draws the paused frame of `epoch`."""
    page.wait_for_function(
        f"() => window.playground.frame.header.epoch === {epoch}"
        " && window.playground.frame.header.status === 'paused'",
        timeout=60_000,
    )


def server_history(page: Page, base_url: str) -> dict[str, Any]:
    """The session's export over REST: its epoch and every epoch's row, in float64."""
    session_id = page.evaluate("() => window.playground.session.id")
    response = page.request.get(
        f"{base_url}/api/sessions/{session_id}/export", headers=owner_headers(page)
    )
    assert response.ok, response.text()
    result: dict[str, Any] = response.json()
    return result


def close_float32(shown: float | None, exact: float | None) -> bool:
    """Whether a float32 value the page holds is the server's float64 value rounded."""
    if shown is None or exact is None:
        return shown is exact
    return abs(shown - exact) <= abs(exact) * FLOAT32_REL


def test_rows_only_frames_fill_the_loss_history_without_gaps(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """3,001 stepped epochs at 2 frames/s: rows-only frames arrive, are never drawn, and the loss
    history holds every epoch (on its stride) with the server's exported losses."""
    headers = watch_frame_headers(page)
    page.goto(f"{live_server}/#frame_rate=2&speed=null")  # as fast as it goes
    page.wait_for_function("() => window.playground && window.playground.frame")
    # Note every frame the page draws, to show a rows-only frame never is.
    page.evaluate(
        """() => { const drawer = window.playground.drawer, draw = drawer.drawFrame.bind(drawer);
                   window.drawnRowsOnly = 0;
                   drawer.drawFrame = (frame, started) => {
                       if (frame.header.rows_only) window.drawnRowsOnly++;
                       draw(frame, started); }; }"""
    )
    step_and_wait(page, STEPPED)
    rows_only = [h for h in headers if h.get("rows_only")]
    assert rows_only, "the test did not provoke rows-only frames"
    assert all("output" not in h["sections"] for h in rows_only)
    assert page.evaluate("() => window.drawnRowsOnly") == 0
    assert page.evaluate("() => window.playground.stats.rowsOnly") == len(rows_only)
    assert_losses_are_the_servers(page, live_server, STEPPED)
    assert page_errors == []


def test_a_reset_restarts_the_loss_history(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """200 epochs, reset, 3,001 epochs (2 frames/s): the page's history is the new run's only."""
    page.goto(f"{live_server}/#frame_rate=2&speed=null")  # as fast as it goes
    page.wait_for_function("() => window.playground && window.playground.frame")
    step_and_wait(page, 200)
    before = page.evaluate("() => window.playground.frame.header.history_id")
    page.evaluate(
        f"""() => {{ window.playground.command({{ type: 'reset' }});
                    window.playground.command({{ type: 'step', n: {STEPPED} }}); }}"""
    )
    wait_paused_at(page, STEPPED)
    assert page.evaluate("() => window.playground.frame.header.history_id") != before
    assert_losses_are_the_servers(page, live_server, STEPPED)
    assert page_errors == []


def assert_losses_are_the_servers(page: Page, base_url: str, total: int) -> None:
    """The page's loss history is epochs 1..total on its stride, with the exported losses."""
    exported = server_history(page, base_url)
    assert exported["epoch"] == total
    losses = page.evaluate(
        "() => { const h = window.playground.losses;"
        " return { columns: h.columns, stride: h.stride }; }"
    )
    epochs, train, test = losses["columns"]
    # Appended one by one from epoch 1, a history with no gap keeps exactly 1, 1 + stride, ...
    assert epochs == list(range(1, total + 1, losses["stride"]))
    history = exported["history"]
    for i, epoch in enumerate(epochs):
        assert close_float32(train[i], history["train_loss"][epoch - 1]), (epoch, train[i])
        assert close_float32(test[i], history["test_loss"][epoch - 1]), (epoch, test[i])


def test_a_new_history_id_restarts_the_curves_though_the_epoch_grew(
    page: Page, live_server: str
) -> None:
    """Frames coalesced over a reset: the first of the new history is already at epoch 300, past
    the old 200, and only its history_id tells; the curves then hold the new rows only."""
    page.goto(f"{live_server}/health")  # any page of the server: modules load same-origin
    curves = page.evaluate(
        """() => import('/static/js/training_curves.js').then(({ TrainingCurves }) => {
            const columns = ['train_loss', 'test_loss', 'train_metric', 'test_metric'];
            // Row e holds losses (history * 1000 + e, its negative), metrics NaN.
            const frame = (historyId, first, last) => {
                const rows = [];
                for (let e = first; e <= last; e++) rows.push(historyId * 1000 + e, -e, NaN, NaN);
                return { header: { history_id: historyId, epoch: last, epochs_first: first,
                                   rows_only: false, layers: [] },
                         epochs: new Float32Array(rows), epochColumns: columns };
            };
            const curves = new TrainingCurves();
            curves.record(frame(1, 1, 200));
            curves.record(frame(2, 1, 300));
            return { columns: curves.losses.columns, last: curves.lastEpoch };
        })"""
    )
    epochs, train, test = curves["columns"]
    assert epochs == list(range(1, 301))
    assert train == [2000 + e for e in range(1, 301)]
    assert test == [-e for e in range(1, 301)]
    assert curves["last"] == 300


def test_gradient_chart_plots_every_epochs_norms(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """3,001 stepped epochs: the chart has a point per kept epoch of the loss history, each
    layer's norm as the export has it, and the last point is the final frame's norm."""
    page.goto(f"{live_server}/#frame_rate=2&speed=null")  # as fast as it goes
    page.wait_for_function("() => window.playground && window.playground.frame")
    step_and_wait(page, STEPPED)
    exported = server_history(page, live_server)
    assert exported["epoch"] == STEPPED
    chart = page.evaluate(
        """() => { const pg = window.playground;
                   return { names: pg.views.gradChart.names, data: pg.views.gradChart.plot.data,
                            losses: pg.losses.columns[0], stride: pg.losses.stride,
                            layers: pg.frame.header.layers.map((l) => l.grad_norm) }; }"""
    )
    # The default net's Dense layers: 4 tanh, 2 tanh, the sigmoid output.
    assert chart["names"] == ["layer 1", "layer 2", "output"]
    epochs = chart["data"][0]
    assert epochs == chart["losses"]
    assert epochs == list(range(1, STEPPED + 1, chart["stride"]))
    assert epochs[-1] == STEPPED
    history = exported["history"]
    for j, final in enumerate(chart["layers"]):
        norms = chart["data"][j + 1]
        for i, epoch in enumerate(epochs):
            exact = history[f"grad_norm_{j}"][epoch - 1]
            assert close_float32(norms[i], exact), (j, epoch, norms[i], exact)
        # The header's norm has 6 significant digits.
        assert norms[-1] == pytest.approx(final, rel=1e-5)
    assert page_errors == []


def test_curves_read_columns_by_name_and_fall_back_to_header_norms(
    page: Page, live_server: str
) -> None:
    """Shuffled columns land in the right series, from a rows-only frame whose header has no
    layers; without grad_norm columns the norms come once per drawn frame from the header, never
    from a rows-only frame."""
    page.goto(f"{live_server}/health")  # any page of the server: modules load same-origin
    result = page.evaluate(
        """() => import('/static/js/training_curves.js').then(({ TrainingCurves }) => {
            const layers = [{ grad_norm: 0.5 }, { grad_norm: 0.25 }];
            const header = (epoch, first, rowsOnly) => ({ history_id: 1, epoch,
                epochs_first: first, rows_only: rowsOnly, layers });
            // Row e: train e, test 10 e, norms 100 e (layer 0) and 1000 e (output).
            const named = new TrainingCurves();
            named.record({ header: { ...header(2, 1, true), layers: undefined },
                epochs: new Float32Array([1000, 10, 100, 1, NaN, NaN,
                                          2000, 20, 200, 2, NaN, NaN]),
                epochColumns: ['grad_norm_1', 'test_loss', 'grad_norm_0', 'train_loss',
                               'train_metric', 'test_metric'] });
            const columns = ['train_loss', 'test_loss', 'train_metric', 'test_metric'];
            const older = new TrainingCurves();
            older.record({ header: header(2, 1, true),
                epochs: new Float32Array([1, 10, NaN, NaN, 2, 20, NaN, NaN]),
                epochColumns: columns });
            older.record({ header: header(3, 3, false),
                epochs: new Float32Array([3, 30, NaN, NaN]), epochColumns: columns });
            return { losses: named.losses.columns, grads: named.grads.columns,
                     names: named.gradNames,
                     olderLosses: older.losses.columns, olderGrads: older.grads.columns };
        })"""
    )
    assert result["losses"] == [[1, 2], [1, 2], [10, 20]]
    assert result["names"] == ["layer 1", "output"]
    assert result["grads"] == [[1, 2], [100, 200], [1000, 2000]]
    assert result["olderLosses"] == [[1, 2, 3], [1, 2, 3], [10, 20, 30]]
    assert result["olderGrads"] == [[3], [0.5], [0.25]]


def test_an_imported_history_arrives_whole_in_the_hello(
    page: Page, live_server: str, page_errors: list[str]
) -> None:
    """A 3,001-epoch export imported into a new session: its hello's rows (rows-only frames ahead
    of the first drawn one) fill the loss and gradient histories with the export's values."""
    headers = watch_frame_headers(page)
    page.goto(f"{live_server}/#frame_rate=2&speed=null")  # as fast as it goes
    page.wait_for_function("() => window.playground && window.playground.frame")
    step_and_wait(page, STEPPED)
    exported = server_history(page, live_server)
    trained = page.evaluate("() => window.playground.session.id")
    # As text: the export's generator states are 128-bit integers, beyond a JS number.
    opened = page.evaluate(
        """async () => { const api = await import('/static/js/api.js');
            const text = await api.exportSession(window.playground.session.id);
            return window.playground.openSession(() => api.importSession(text)); }"""
    )
    assert opened, page.locator("#error").inner_text()
    page.wait_for_function(
        "(id) => window.playground.session.id !== id"
        " && window.playground.frame.header.session_id === window.playground.session.id"
        f" && window.playground.frame.header.epoch === {STEPPED}",
        arg=trained,
    )
    imported = page.evaluate("() => window.playground.session.id")
    hello_rows_only = [h for h in headers if h["session_id"] == imported and h.get("rows_only")]
    assert len(hello_rows_only) > 1
    assert_losses_are_the_servers(page, live_server, STEPPED)
    curves = page.evaluate(
        "() => ({ grads: window.playground.curves.grads.columns,"
        " losses: window.playground.losses.columns[0] })"
    )
    assert len(curves["grads"]) == 1 + 3  # epochs, then the default net's 3 Dense layers
    assert curves["grads"][0] == curves["losses"]
    history = exported["history"]
    for j, norms in enumerate(curves["grads"][1:]):
        for i, epoch in enumerate(curves["losses"]):
            assert close_float32(norms[i], history[f"grad_norm_{j}"][epoch - 1]), (j, epoch)
    assert page_errors == []
