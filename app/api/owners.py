"""Owner tokens: who may change a session, race or job (anyone with an id may watch).

A token is 256 bits from `secrets`, handed out once (on the first create without one) and
presented as `Authorization: Bearer <token>`; the websocket's first message `{"type": "auth",
"token": ...}` does the same. The server keeps only its SHA-256 (so a log, a dump or, later, the
database never holds a usable token) and compares hashes in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

TOKEN_BYTES = 32
# token_urlsafe(32) is 43 characters; anything far longer is not one of ours (and is not hashed).
MAX_TOKEN_CHARS = 128


def new_token() -> str:
    """A fresh owner token (256 bits)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """The stored form of a token: hex SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def hashes_match(presented_hash: str | None, owner_hash: str) -> bool:
    """Constant-time comparison of two token hashes (None never matches)."""
    if presented_hash is None:
        return False
    return hmac.compare_digest(presented_hash.encode(), owner_hash.encode())


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None (absent, other scheme,
    or longer than any token we issue)."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        return None
    return token


@dataclass(frozen=True)
class Caller:
    """Who is asking: the hash of the token they presented (if any) and their address."""

    token_hash: str | None
    address: str

    def owns(self, owner_hash: str) -> bool:
        """Whether the caller presented the token of this owner."""
        return hashes_match(self.token_hash, owner_hash)


class OwnerRegistry:
    """The owners the server knows, as token hashes, at most `limit` of them (app.state.owners).

    A create with a token the registry does not know is refused (401): tokens are only ever
    issued by the server. When full, the least recently seen owner that holds nothing (no
    session, race or job: `in_use`) is forgotten; its token is then unknown, and its next
    create gets a 401 (the page drops it and starts afresh). Owners that hold something are
    never forgotten, so the registry holds at most max(limit, owners holding something).
    """

    def __init__(self, limit: int, in_use: Callable[[str], bool] | None = None) -> None:
        self.limit = max(1, limit)
        # Who holds something for an owner (the session manager; races and jobs may add theirs).
        self.holders: list[Callable[[str], bool]] = [in_use] if in_use else []
        self._seen: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def __contains__(self, owner: object) -> bool:
        return owner in self._seen

    def in_use(self, owner: str) -> bool:
        """Whether any holder still holds something for this owner."""
        return any(held(owner) for held in self.holders)

    def touch(self, owner: str) -> bool:
        """Whether the owner is known (and now the most recently seen)."""
        if owner not in self._seen:
            return False
        self._seen.move_to_end(owner)
        return True

    def add(self, owner: str) -> None:
        """Remember an owner (a create succeeded), forgetting idle ones beyond the limit."""
        if self.touch(owner):
            return
        if len(self._seen) >= self.limit:
            for old in list(self._seen):
                if len(self._seen) < self.limit:
                    break
                if not self.in_use(old):
                    del self._seen[old]
        self._seen[owner] = None
