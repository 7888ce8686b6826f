"""A bounded, expiring map from id to an instrument's state (races, replays) in the web process."""

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")


class StoreFull(Exception):
    """The store holds `limit` live items (HTTP 429)."""


@dataclass
class ExpiringStore(Generic[Item]):
    """At most `limit` items; an item unused for `idle_seconds` is dropped on the next access."""

    limit: int
    idle_seconds: float
    what: str  # "race", "replay": names the item in errors
    limit_name: str  # the Settings field behind `limit`
    clock: Callable[[], float] = time.monotonic
    _items: dict[str, tuple[Item, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _expire(self, now: float) -> None:
        for key in [k for k, (_, used) in self._items.items() if now - used > self.idle_seconds]:
            del self._items[key]

    def add(self, item: Item, key: str | None = None) -> str:
        """Store `item` under `key` (a new random id by default); returns the key."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            key = key or secrets.token_urlsafe(8)
            if key not in self._items and len(self._items) >= self.limit:
                raise StoreFull(
                    f"{len(self._items)} {self.what}s exist; {self.limit_name} = {self.limit}"
                )
            self._items[key] = (item, now)
            return key

    def get(self, key: str) -> Item:
        """The item, marked as used now; KeyError naming it when absent or expired."""
        with self._lock:
            now = self.clock()
            self._expire(now)
            if key not in self._items:
                raise KeyError(f"{self.what} {key!r} not found")
            item = self._items[key][0]
            self._items[key] = (item, now)
            return item

    def remove(self, key: str) -> None:
        """Forget `key`; KeyError naming it when absent."""
        with self._lock:
            if self._items.pop(key, None) is None:
                raise KeyError(f"{self.what} {key!r} not found")

    def __len__(self) -> int:
        return len(self._items)
