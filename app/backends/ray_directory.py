"""The directory actor of the ray backend (issue 12): where every session lives, for every replica.

The session -> (shard, owner hash, address) map, placement (the least-loaded shard), the session
quotas over every replica's sessions and the running quotas' grants; the job budgets (running
jobs per owner, races, replays and the bytes they hold) are its `JobBudgets` part
(app/backends/directory_budgets.py). Actor methods run one at a time (a plain, non-async actor:
no event loop, one thread), so a check and its reservation are atomic. A plain class:
app/backends/ray_backend.py wraps it with `ray.remote`.

It survives restarts: with a database URL (the replicas pass theirs), every placement and new
owner hash is written to the database (app/storage/placements.py: tables placements,
directory_owners) before the call that made it answers, and a directory that Ray restarts
(max_restarts=-1) rebuilds the map, the quotas' counts and the owner list from there in its
constructor (and the races and replays: directory_budgets.py). What it keeps in memory only:
the running grants (a restarted directory counts the shards' running sessions instead, which
every replica passes in), and the running jobs (directory_budgets.py: it asks the shards).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.backends.directory_budgets import JobBudgets

DIRECTORY = "nnpg-directory"
UNLANDED_SECONDS = 70.0  # a grant whose play never said it landed (its replica died) counts
# as landed after this (> command_timeout_seconds, 60 s by default: the play has answered by then)


@dataclass
class Grant:
    """A session allowed to train by the running quotas: whose, from where, which grant."""

    owner: str
    address: str
    generation: int
    shard: int
    landed: bool = False  # the play that asked for it reached its shard (and answered)
    at: float = field(default_factory=time.monotonic)


class Directory(JobBudgets):
    """Session -> (shard, owner hash, address) for every replica; placement and quotas (and,
    from JobBudgets, the job budgets)."""

    def __init__(self, database_url: str | None = None) -> None:
        self.sessions: dict[str, tuple[int, str, str]] = {}
        self.owners: list[str] = []  # every owner hash that created a session, in order
        self.known: set[str] = set()
        self.stored: set[str] = set()  # placed sessions evicted for idleness (not in memory)
        self.grants: dict[str, Grant] = {}
        self.generations = itertools.count(1)
        self.started = time.time()
        self.engine: Any = None
        if database_url:
            from app.settings import Settings
            from app.storage.database import make_engine
            from app.storage.placements import load_directory, stored_sessions

            self.engine = make_engine(Settings(database_url=database_url, database_threads=1))
            stored, owners = load_directory(self.engine)
            self.sessions = {sid: (p.shard, p.owner_hash, p.address) for sid, p in stored.items()}
            self.owners = owners
            self.known = set(owners)
            self.stored = stored_sessions(self.engine) & set(self.sessions)
        self._start_budgets()

    # ---- placement and the session quotas -------------------------------------------------

    def place(
        self, session_id: str, owner: str, address: str, shards: list[int], limits: dict[str, int]
    ) -> tuple[int | None, str | None]:
        """Reserve a session on the least-loaded of `shards`: (shard, None), or (None, why)
        when a quota refuses it (the 429 detail, naming the setting). Stored before it answers;
        a session placed already (a retried call) keeps its shard."""
        if session_id in self.sessions:
            return self.sessions[session_id][0], None
        # Live sessions count towards the session quotas; idle-evicted ("stored") ones only
        # towards max_stored_sessions_per_owner, with the owner's live ones (as on one machine).
        live = [where for sid, where in self.sessions.items() if sid not in self.stored]
        total = len(live)
        if total >= limits["max_sessions"]:
            return None, f"{total} sessions exist; max_sessions = {limits['max_sessions']}"
        owned = sum(o == owner for _, o, _ in live) if owner else 0
        if owner and owned >= limits["max_sessions_per_owner"]:
            return None, (
                f"this owner has {owned} live sessions; max_sessions_per_owner = "
                f"{limits['max_sessions_per_owner']} (delete one, or wait for one to expire)"
            )
        stored_limit = limits.get("max_stored_sessions_per_owner")
        if owner and stored_limit is not None:
            kept = sum(self.sessions[sid][1] == owner for sid in self.stored)
            if owned + kept >= stored_limit:
                return None, (
                    f"this owner has {owned} live and {kept} stored sessions; "
                    f"max_stored_sessions_per_owner = {stored_limit} (delete one)"
                )
        near = sum(a == address for _, _, a in live) if address else 0
        if address and near >= limits["max_sessions_per_address"]:
            return None, (
                f"address {address} has {near} live sessions; max_sessions_per_address = "
                f"{limits['max_sessions_per_address']}"
            )
        load = Counter(s for s, _, _ in live)
        shard = min(shards, key=lambda s: (load[s], s))
        new_owner = bool(owner) and owner not in self.known
        if self.engine is not None:  # written first: what the directory answered survives it
            from app.storage.placements import Placement, save_placement

            save_placement(self.engine, session_id, Placement(shard, owner, address), new_owner)
        self.sessions[session_id] = (shard, owner, address)
        if new_owner:
            self.known.add(owner)
            self.owners.append(owner)
        return shard, None

    def owners_since(self, seen: int) -> tuple[list[str], int]:
        """The owner hashes after the first `seen` ones, and how many there are now: each
        replica keeps its owner registry up to date with these (a token issued by one replica
        works on every replica)."""
        return self.owners[seen:], len(self.owners)

    def set_stored(self, session_ids: list[str], stored: bool) -> None:
        """Sessions a shard evicted for idleness (stored: out of memory, back on their next
        call) or brought back: evicted ones count towards max_stored_sessions_per_owner only
        (their replays are gone with them). Not written here: the sessions table's `state`
        says it, read back on a restart."""
        for session_id in session_ids:
            if stored and session_id in self.sessions:
                self.stored.add(session_id)
                self._drop("replay", session_id)
            else:
                self.stored.discard(session_id)

    def lookup(self, session_id: str) -> tuple[int, str, str] | None:
        """(shard, owner hash, address) of a session, or None."""
        return self.sessions.get(session_id)

    def release(self, session_id: str) -> None:
        """A session was deleted (or its create failed)."""
        self.grants.pop(session_id, None)
        self.stored.discard(session_id)
        self._drop("replay", session_id)
        if self.sessions.pop(session_id, None) is not None and self.engine is not None:
            from app.storage.placements import delete_placement

            delete_placement(self.engine, session_id)

    def sessions_on(self, shard: int) -> list[str]:
        """The sessions placed on a shard (a restarted shard restores them)."""
        return [s for s, (where, _, _) in self.sessions.items() if where == shard]

    def count(self) -> int:
        """Sessions placed."""
        return len(self.sessions)

    def stats(self) -> dict[str, Any]:
        """This incarnation's process and what it holds (tests, operators)."""
        return {
            "pid": os.getpid(),
            "started": self.started,
            "sessions": len(self.sessions),
            "owners": len(self.owners),
            "stored": len(self.stored),
            "grants": len(self.grants),
            "jobs": len(self.jobs),
            "races": len(self.races),
            "replays": len(self.replays),
            "running_jobs": sum(e.running for e in self.jobs.values()),
            "persistent": self.engine is not None,
        }

    # ---- the running quotas ---------------------------------------------------------------

    def reserve_run(
        self,
        session_id: str,
        owner: str,
        address: str,
        limits: dict[str, int],
        on_shards: tuple[int, int],
        stale: dict[str, int] | None = None,
    ) -> tuple[str, Any]:
        """May this session start training? Atomic over every replica's plays.

        Counts the other sessions of `owner` and of `address` holding a grant (a play let
        through, by any replica), or what the shards report training now (`on_shards`: owner,
        address; what a restarted directory has no grant of), whichever is more. Answers
        ("granted", generation) and keeps a grant; ("refused", the 429 detail); or, when
        `stale` is None and grants at the limit may have ended (landed ones: their sessions
        may have paused since), ("check", {session: (generation, shard)}): the caller asks
        those sessions' shards and calls again with the ended ones in `stale` (session ->
        generation; a grant given again since is kept), and then gets no "check".
        """
        for sid, generation in (stale or {}).items():
            grant = self.grants.get(sid)
            if grant is not None and grant.generation == generation and self._landed(grant):
                del self.grants[sid]
        others = {sid: g for sid, g in self.grants.items() if sid != session_id}
        by_owner = [s for s, g in others.items() if owner and g.owner == owner]
        by_address = [s for s, g in others.items() if address and g.address == address]
        owner_count = max(len(by_owner), on_shards[0]) if owner else 0
        address_count = max(len(by_address), on_shards[1]) if address else 0
        owner_limit = limits["max_running_per_owner"]
        address_limit = limits["max_running_per_address"]
        if owner_count < owner_limit and address_count < address_limit:
            shard = self.sessions.get(session_id, (-1, "", ""))[0]
            generation = next(self.generations)
            self.grants[session_id] = Grant(owner, address, generation, shard)
            return "granted", generation
        if stale is None:
            suspects = {
                s: (others[s].generation, others[s].shard)
                for s in {*by_owner, *by_address}
                if self._landed(others[s])
            }
            if suspects:
                return "check", suspects
        if owner_count >= owner_limit:
            return "refused", (
                f"this owner has {owner_count} sessions training; "
                f"max_running_per_owner = {owner_limit} (pause one first)"
            )
        return "refused", (
            f"address {address} has {address_count} sessions training; "
            f"max_running_per_address = {address_limit}"
        )

    def run_landed(self, session_id: str, generation: int) -> None:
        """The play of this grant reached its shard: from now on the grant may be found stale
        (before, its session may still look paused to a check)."""
        grant = self.grants.get(session_id)
        if grant is not None and grant.generation == generation:
            grant.landed = True

    @staticmethod
    def _landed(grant: Grant) -> bool:
        return grant.landed or time.monotonic() - grant.at > UNLANDED_SECONDS
