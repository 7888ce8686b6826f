"""The bounded, expiring store behind races and replays."""

import pytest

from app.instruments.store import ExpiringStore, StoreFull


class FakeClock:
    """Seconds that only move when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_limit_names_the_setting_and_expiry_frees_room() -> None:
    clock = FakeClock()
    store: ExpiringStore[str] = ExpiringStore(2, 10.0, "race", "max_sessions", clock=clock)
    first = store.add("a")
    store.add("b")
    with pytest.raises(StoreFull, match=r"^2 races exist; max_sessions = 2$"):
        store.add("c")
    clock.now = 5.0
    assert store.get(first) == "a"  # using it keeps it alive
    clock.now = 12.0  # "b" idle for 12 s > 10 s, "a" for 7 s
    store.add("c")
    assert len(store) == 2
    with pytest.raises(KeyError, match="race"):
        store.get("missing")


def test_replacing_a_key_does_not_count_twice_and_remove_forgets() -> None:
    store: ExpiringStore[int] = ExpiringStore(1, 60.0, "replay", "max_sessions")
    store.add(1, key="s1")
    store.add(2, key="s1")
    assert store.get("s1") == 2
    store.remove("s1")
    with pytest.raises(KeyError):
        store.remove("s1")
