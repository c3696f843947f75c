"""Who may see the console: one-time login links, sessions, and their CSRF tokens.

A link is minted through the authenticated API (``orch console`` asks with the bearer
key), lives ``LINK_TTL`` seconds and works once. Opening it, or typing the API key on
the login page, starts a session: an opaque token in an HttpOnly, SameSite=Strict
cookie. Each session carries its own CSRF token that every state-changing request
must echo. Sessions live in the daemon's memory only: a restarted daemon forgets them
(``orch console`` logs in again in one command), and nothing secret is written down.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field

from orchestrator.ids import new_token

LINK_TTL = 120.0
"""Long enough to switch to a browser, short enough that a link in a scrollback is dead."""
IDLE_TTL = 12 * 3600.0
"""A session unused this long ends (a laptop left open overnight)."""
MAX_LINKS = 1000
COOKIE = "orch_session"


@dataclass
class Session:
    token: str
    csrf: str
    last_seen: float = field(default_factory=time.monotonic)


class Sessions:
    def __init__(self, api_key: str) -> None:
        self._key = api_key.encode()
        self._links: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}

    def mint_link(self) -> tuple[str, float]:
        """A single-use login token and the wall-clock time it expires at."""
        self._expire()
        if len(self._links) >= MAX_LINKS:  # a runaway script; the oldest go first
            for token in sorted(self._links, key=self._links.__getitem__)[: MAX_LINKS // 2]:
                del self._links[token]
        token = new_token()
        self._links[token] = time.monotonic() + LINK_TTL
        return token, time.time() + LINK_TTL

    def redeem(self, token: str) -> Session | None:
        """The session a link opens, or None if it is unknown, used or expired."""
        deadline = self._links.pop(token, None)
        if deadline is None or deadline < time.monotonic():
            return None
        return self._start()

    def login(self, api_key: str) -> Session | None:
        if not api_key or not hmac.compare_digest(api_key.strip().encode(), self._key):
            return None
        return self._start()

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._sessions.get(token)
        now = time.monotonic()
        if session is None or now - session.last_seen > IDLE_TTL:
            self._sessions.pop(token, None)
            return None
        session.last_seen = now
        return session

    def end(self, token: str | None) -> None:
        if token:
            self._sessions.pop(token, None)

    def _start(self) -> Session:
        self._expire()
        session = Session(token=new_token(), csrf=new_token())
        self._sessions[session.token] = session
        return session

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, d in self._links.items() if d < now]:
            del self._links[token]
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > IDLE_TTL]:
            del self._sessions[token]


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())
