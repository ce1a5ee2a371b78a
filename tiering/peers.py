"""The fleet as the read path sees it: which member owns a block, and how to ask it.

A member that does not own a block asks its owner for it, and the owner answers exactly as
the upstream would (the same status, headers and bytes for the same ranged GET, `If-Match`
included), from its tiers or by filling them. So the owner simply *is* the upstream for its
blocks: `UpstreamReads` sends a block's GET to `Peers.route(...)`'s member instead of to S3,
and everything else about the read (cut-through, resume, pinning, checks) is unchanged.

- Peer requests go to `<member>/_s3tier/peer/<bucket>/<key>`, signed with the fleet's shared
  secret (tiering/peerauth.py) instead of SigV4.
- The owner answers a peer request from its own tiers or the upstream, never from another
  member: `FOR_PEER` is set while it serves one, and every task it starts inherits it.
- A member that fails (no connection within the short connect timeout, a broken answer, a
  5xx, a refused signature) is skipped for `OPEN_S` (its circuit is open), then tried again
  with the next block it owns (half-open); the block comes from the upstream meanwhile.
  Nothing fails that the upstream could have served.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from urllib.parse import urlsplit

from tiering.members import Membership
from tiering.metrics import Metrics
from tiering.ownership import block_id, owner
from tiering.peerauth import HEADER, sign
from tiering.signing import Signer
from tiering.upstream import Upstream, UpstreamBroken, UpstreamUnavailable, object_path

log = logging.getLogger("s3tier.peers")
PEER_PREFIX = "/_s3tier/peer"
REFUSED = "x-s3tier-peer-refused"  # on a member's 403 to a request it could not verify
OPEN_S = 5.0  # how long a failed member is skipped before it is tried again
FORGET_TIMEOUT_S = 2.0  # how long a write waits for the members to forget what it changed
# Set while this node serves another member's request: then it asks no member itself.
FOR_PEER: ContextVar[bool] = ContextVar("for_peer", default=False)


class PeerSigner(Signer):
    """Signs a request to a member with the fleet's secret (no SigV4: peers hold no keys)."""

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        super().__init__(None, "")
        self._secret = secret
        self._clock = clock

    def sign(
        self, method: str, url: str, headers: dict[str, str], payload_hash: str
    ) -> dict[str, str]:
        value = sign(self._secret, method, urlsplit(url).path, self._clock())
        return {**headers, HEADER: value}


class Peers:
    """Ownership over the current members, an `Upstream` to each, and a circuit per member."""

    def __init__(
        self,
        membership: Membership,
        me: str,
        connect: Callable[[str], Upstream],
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self.membership = membership
        self.me = me
        self._connect = connect  # the Upstream speaking to one member's peer endpoint
        self._clock = clock
        self._metrics = metrics
        self._upstreams: dict[str, Upstream] = {}
        self._open_until: dict[str, float] = {}

    def route(self, bucket: str, key: str, index: int) -> tuple[str, Upstream] | None:
        """The member to ask for block `index` of `bucket/key`, or None: ask the upstream
        (this node owns it, serves a peer, or the owner's circuit is open)."""
        members = self.membership.members
        if FOR_PEER.get() or len(members) < 2:
            return None
        member = owner(members, block_id(bucket, key, index))
        if member == self.me or self._clock() < self._open_until.get(member, 0.0):
            return None
        return member, self._upstream_of(member)

    def _upstream_of(self, member: str) -> Upstream:
        upstream = self._upstreams.get(member)
        if upstream is None:
            upstream = self._upstreams[member] = self._connect(member)
        return upstream

    def owns_elsewhere(self, bucket: str, key: str, index: int) -> bool:
        """Whether another member owns the block (whatever its circuit's state)."""
        members = self.membership.members
        return len(members) > 1 and owner(members, block_id(bucket, key, index)) != self.me

    def failed(self, member: str, why: str, seconds: float | None = None) -> None:
        """The member did not answer usefully (after `seconds`, for a block request): skip it
        for a while."""
        if self._clock() >= self._open_until.get(member, 0.0):
            log.warning("peer %s skipped for %.0f s: %s", member, OPEN_S, why)
        self._open_until[member] = self._clock() + OPEN_S
        if seconds is not None and self._metrics is not None:
            self._metrics.peer("failed", seconds)

    def answered(self, member: str, seconds: float, hit: bool) -> None:
        """The member answered a block request, from its tiers (`hit`) or the upstream."""
        self._open_until.pop(member, None)
        if self._metrics is not None:
            self._metrics.peer("hit" if hit else "miss", seconds)

    def circuits_open(self) -> int:
        """How many members are being skipped now."""
        now = self._clock()
        return sum(1 for until in self._open_until.values() if until > now)

    async def forget_everywhere(self, bucket: str, key: str) -> None:
        """A write through this node changed `bucket/key`: every other member forgets it
        before the write is answered, so a read through any member sees the write, as it
        would through one node. A member that does not confirm in time is counted, and skipped
        by the others' reads for a while; its own clients may see the old version until its
        freshness runs out (docs/fleet.md)."""
        others = [m for m in self.membership.members if m != self.me]
        if FOR_PEER.get() or not others:
            return
        results = await asyncio.gather(
            *(self._forget(member, bucket, key) for member in others), return_exceptions=True
        )
        for member, result in zip(others, results, strict=True):
            if result is not True:
                self.failed(member, f"did not forget {bucket}/{key}: {result}")

    async def _forget(self, member: str, bucket: str, key: str) -> bool:
        member_upstream = self._upstream_of(member)
        try:
            async with asyncio.timeout(FORGET_TIMEOUT_S):
                answer = await member_upstream.fetch("POST", object_path(bucket, key), {}, 1 << 12)
        except (TimeoutError, UpstreamUnavailable, UpstreamBroken):
            return False
        return answer.status == 204
