"""The directory actor of the ray backend (issue 12): where every session lives, for every replica.

The session -> (shard, owner hash, address) map, placement (the least-loaded shard) and the
session quotas over every replica's sessions. Actor methods run one at a time, so a check and its
reservation are atomic. A plain class: app/backends/ray_backend.py wraps it with `ray.remote`.
"""

from __future__ import annotations

from collections import Counter

DIRECTORY = "nnpg-directory"


class Directory:
    """Session -> (shard, owner hash, address) for every replica; placement and quotas."""

    def __init__(self) -> None:
        self.sessions: dict[str, tuple[int, str, str]] = {}
        self.owners: list[str] = []  # every owner hash that created a session, in order
        self.known: set[str] = set()

    def place(
        self, session_id: str, owner: str, address: str, shards: list[int], limits: dict[str, int]
    ) -> tuple[int | None, str | None]:
        """Reserve a session on the least-loaded of `shards`: (shard, None), or (None, why)
        when a quota refuses it (the 429 detail, naming the setting)."""
        total = len(self.sessions)
        if total >= limits["max_sessions"]:
            return None, f"{total} sessions exist; max_sessions = {limits['max_sessions']}"
        owned = sum(o == owner for _, o, _ in self.sessions.values()) if owner else 0
        if owner and owned >= limits["max_sessions_per_owner"]:
            return None, (
                f"this owner has {owned} live sessions; max_sessions_per_owner = "
                f"{limits['max_sessions_per_owner']} (delete one, or wait for one to expire)")
        near = sum(a == address for _, _, a in self.sessions.values()) if address else 0
        if address and near >= limits["max_sessions_per_address"]:
            return None, (
                f"address {address} has {near} live sessions; max_sessions_per_address = "
                f"{limits['max_sessions_per_address']}")
        load = Counter(s for s, _, _ in self.sessions.values())
        shard = min(shards, key=lambda s: (load[s], s))
        self.sessions[session_id] = (shard, owner, address)
        if owner and owner not in self.known:
            self.known.add(owner)
            self.owners.append(owner)
        return shard, None

    def owners_since(self, seen: int) -> tuple[list[str], int]:
        """The owner hashes after the first `seen` ones, and how many there are now: each
        replica keeps its owner registry up to date with these (a token issued by one replica
        works on every replica)."""
        return self.owners[seen:], len(self.owners)

    def lookup(self, session_id: str) -> tuple[int, str, str] | None:
        """(shard, owner hash, address) of a session, or None."""
        return self.sessions.get(session_id)

    def release(self, session_id: str) -> None:
        """A session was deleted (or its create failed)."""
        self.sessions.pop(session_id, None)

    def sessions_on(self, shard: int) -> list[str]:
        """The sessions placed on a shard (a restarted shard restores them)."""
        return [s for s, (where, _, _) in self.sessions.items() if where == shard]

    def count(self) -> int:
        """Sessions placed."""
        return len(self.sessions)
