"""app.main.run: the fast path's warm-up starts before the server does."""

from typing import Any

import pytest

from app import main


def test_run_starts_the_warm_up_before_uvicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(main.fast, "start_warm_up", lambda: calls.append("warm_up"))

    def fake_uvicorn_run(app: str, **options: Any) -> None:
        calls.append(app)
        assert options["ws_per_message_deflate"] is False

    monkeypatch.setattr(main.uvicorn, "run", fake_uvicorn_run)
    main.run()
    assert calls == ["warm_up", "app.main:app"]
