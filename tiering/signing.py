"""SigV4 signing of upstream requests with the proxy's own credentials, by botocore's signer.

botocore's generic SigV4Auth normalises `..` and `//` out of the path, which S3 does not do: a
key `a/../b` would be signed as `/b`. S3's canonical URI is the path exactly as sent, so the
signer here keeps it, as botocore's S3SigV4Auth does, while leaving the payload hash to us:
a streamed body cannot be hashed before it is sent.
"""

from __future__ import annotations

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class _S3PathSigV4(SigV4Auth):  # type: ignore[misc]
    def _normalize_url_path(self, path: str) -> str:
        return path


class Signer:
    """Adds Authorization and X-Amz-Date to a request; a no-op without credentials."""

    def __init__(self, credentials: Credentials | None, region: str) -> None:
        self._credentials = credentials
        self._region = region

    @property
    def anonymous(self) -> bool:
        return self._credentials is None

    def sign(
        self, method: str, url: str, headers: dict[str, str], payload_hash: str
    ) -> dict[str, str]:
        """`url` must already be encoded exactly as it will be sent (path and sorted query)."""
        # botocore reads the payload hash from this header when present, and signs it.
        headers = {**headers, "X-Amz-Content-SHA256": payload_hash}
        if self._credentials is None:
            return headers
        # Refreshable credentials (IRSA, SSO) renew themselves here when close to expiry.
        frozen: ReadOnlyCredentials = self._credentials.get_frozen_credentials()
        request = AWSRequest(method=method, url=url, headers=headers)
        _S3PathSigV4(frozen, "s3", self._region).add_auth(request)
        return dict(request.headers.items())
