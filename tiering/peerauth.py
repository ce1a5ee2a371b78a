"""Authentication between fleet members: an HMAC over method, path and time. Pure.

A member asks another for a block under the reserved `/_s3tier/` prefix. The request carries

    X-S3tier-Peer: t=<unix seconds>,sig=<hex HMAC-SHA256(secret, "METHOD\\npath\\nt")>

with the secret every member shares (`--peer-secret`, a Kubernetes Secret in the chart). The
answerer recomputes it and accepts only a signature that matches in constant time and a time
within `SKEW_S` of its own clock, so a captured request stops working soon after. Clients'
own credentials never travel between members: each node checks its client's signature and
grants before it asks a peer.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "x-s3tier-peer"
SKEW_S = 60


def sign(secret: bytes, method: str, path: str, now: float) -> str:
    """The header value for a request made at `now` (unix seconds)."""
    stamp = str(int(now))
    return f"t={stamp},sig={_mac(secret, method, path, stamp)}"


def verify(secret: bytes, method: str, path: str, value: str | None, now: float) -> bool:
    """Whether `value` (the header, or None when absent) signs this request, made recently."""
    if not secret or not value:
        return False
    fields = dict(part.partition("=")[::2] for part in value.split(","))
    stamp, given = fields.get("t", ""), fields.get("sig", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > SKEW_S:
        return False
    return hmac.compare_digest(given, _mac(secret, method, path, stamp))


def _mac(secret: bytes, method: str, path: str, stamp: str) -> str:
    message = f"{method}\n{path}\n{stamp}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()
