"""Who is in the fleet: the member list the platform already keeps, re-read and debounced.

`--peers` names where the list comes from (`MemberSource.parse`):

    http://10.0.0.1:8080,http://10.0.0.2:8080   a static list, this node included
    dns:s3tier-peers.ns.svc:8080                 the A records of a name, re-resolved: for a
                                                 Kubernetes headless Service, its Ready pods
    dns:https://s3tier-peers.ns.svc:8443         the same, peers spoken to over HTTPS
    file:/etc/s3tier/peers                       one URL a line (# comments), re-read each look

A member is its base URL, which is also its id for ownership (tiering/ownership.py). A change
is adopted only once it has been seen unchanged for `settle_s` (`Settled`): a pod flapping
through readiness, or a DNS answer caught mid-rollout, moves no ownership until it settles.
Nodes that disagree meanwhile only fetch some blocks twice (blocks are immutable).
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

Members = tuple[str, ...]  # sorted base URLs


@dataclass(frozen=True, slots=True)
class MemberSource:
    """Where the member list comes from: kind is "static", "dns" or "file"."""

    kind: str
    members: Members = ()  # static
    host: str = ""  # dns
    port: int = 0
    scheme: str = "http"
    path: str = ""  # file

    @classmethod
    def parse(cls, text: str) -> MemberSource:
        """`--peers` as given; ValueError names what is wrong with it."""
        text = text.strip()
        if text.startswith("file:"):
            if not text[5:]:
                raise ValueError("--peers file: needs a path, as file:/etc/s3tier/peers")
            return cls("file", path=text[5:])
        if text.startswith("dns:"):
            return cls._dns(text[4:])
        return cls("static", members=members_of(text.split(",")))

    @classmethod
    def _dns(cls, rest: str) -> MemberSource:
        scheme = "http"
        for prefix in ("http://", "https://"):
            if rest.startswith(prefix):
                scheme, rest = prefix[:-3], rest[len(prefix) :]
        host, _, port = rest.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--peers dns:{rest}: expected dns:NAME:PORT")
        return cls("dns", host=host, port=int(port), scheme=scheme)


def members_of(urls: list[str]) -> Members:
    """Base URLs, checked and normalised (no trailing slash), sorted, without repeats."""
    out = set()
    for raw in (u.strip() for u in urls):
        if not raw:
            continue
        parts = urlsplit(raw)
        bare = parts.path in ("", "/") and not parts.query
        if parts.scheme not in ("http", "https") or not parts.hostname or not bare:
            raise ValueError(f"peer {raw!r}: expected http(s)://host:port")
        out.add(f"{parts.scheme}://{parts.netloc}")
    return tuple(sorted(out))


async def resolve(source: MemberSource) -> Members:
    """The members the source names now. Raises OSError when it cannot be read."""
    if source.kind == "static":
        return source.members
    if source.kind == "file":
        text = await asyncio.to_thread(_read, source.path)
        lines = (line.partition("#")[0] for line in text.splitlines())
        return members_of(list(lines))
    infos = await asyncio.get_running_loop().getaddrinfo(
        source.host, source.port, family=socket.AF_INET, type=socket.SOCK_STREAM
    )
    return members_of([f"{source.scheme}://{info[4][0]}:{source.port}" for info in infos])


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


class Settled:
    """The member list in force: a new one is adopted once seen unchanged for `settle_s`."""

    def __init__(self, initial: Members, settle_s: float) -> None:
        self.current = initial
        self._settle_s = settle_s
        self._candidate: Members | None = None
        self._since = 0.0

    def offer(self, seen: Members, now: float) -> bool:
        """What a look found at `now`; True when that changed the list in force."""
        if seen == self.current:
            self._candidate = None
            return False
        if seen != self._candidate:
            self._candidate, self._since = seen, now
        if now - self._since < self._settle_s:
            return False
        self.current, self._candidate = seen, None
        return True


class Membership:
    """The fleet's members, kept current by `run()` (one look every `every_s`)."""

    def __init__(self, source: MemberSource, every_s: float = 5.0, settle_s: float = 10.0) -> None:
        self.source = source
        self._every_s = every_s
        self._settled = Settled(source.members, settle_s)
        self.failures = 0  # looks that could not read the source; the list in force stays

    @property
    def members(self) -> Members:
        return self._settled.current

    async def start(self) -> None:
        """The first look, adopted at once: a node starts with the fleet as it stands."""
        self._settled.current = await resolve(self.source)

    async def look(self, now: float) -> bool:
        """One look at the source; True when the members in force changed."""
        try:
            seen = await resolve(self.source)
        except (OSError, ValueError):
            self.failures += 1
            return False
        return self._settled.offer(seen, now)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._every_s)
            await self.look(loop.time())
