"""The errors s3tier answers with itself, and the one place that renders them as S3 XML.

    Exception
     ├── S3Error                   an answer in S3's own words (status + Code + Message)
     │    ├── InvalidRange          416, Range starts past the end (carries the size)
     │    ├── PreconditionFailed    412, If-Match / If-Unmodified-Since did not hold
     │    ├── InvalidRequest        400, a request the proxy cannot make sense of
     │    ├── InvalidURI            400, a path that is not valid percent-encoded UTF-8
     │    ├── MethodNotAllowed      405
     │    ├── ServiceUnavailable    503, the upstream could not be reached or timed out
     │    ├── InternalError         500, a bug: never raised on purpose
     │    │   -- identity (403 unless noted) --
     │    ├── AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, RequestTimeTooSkewed
     │    ├── AuthorizationHeaderMalformed (400), AuthorizationQueryParametersError (400)
     │    │   -- uploads (400) --
     │    └── IncompleteBody, XAmzContentSHA256Mismatch, BadDigest, InvalidDigest
     └── UpstreamAnswer            the upstream's own non-success answer, replayed verbatim

Upstream answers are not ours to reword: a 404 NoSuchKey or a 403 AccessDenied reaches the
client byte for byte, so clients see exactly what S3 said.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from random import getrandbits
from xml.sax.saxutils import escape

Headers = list[tuple[bytes, bytes]]


class S3Error(Exception):
    """An error answered by the proxy itself, rendered like S3's `<Error>` document."""

    status = 500
    code = "InternalError"
    message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **fields: str) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message
        self.fields = fields
        self.headers: Headers = []


class InvalidRange(S3Error):
    status = 416
    code = "InvalidRange"
    message = "The requested range is not satisfiable"


class PreconditionFailed(S3Error):
    status = 412
    code = "PreconditionFailed"
    message = "At least one of the pre-conditions you specified did not hold"


class InvalidRequest(S3Error):
    status = 400
    code = "InvalidRequest"
    message = "The request is not valid."


class InvalidURI(S3Error):
    status = 400
    code = "InvalidURI"
    message = "Couldn't parse the specified URI."


class MethodNotAllowed(S3Error):
    status = 405
    code = "MethodNotAllowed"
    message = "The specified method is not allowed against this resource."


class ServiceUnavailable(S3Error):
    status = 503
    code = "ServiceUnavailable"
    message = "Please reduce your request rate."


class InternalError(S3Error):
    pass


@dataclass(slots=True)
class UpstreamAnswer(Exception):
    """A non-success answer from the upstream, kept whole so it can be replayed verbatim."""

    status: int
    headers: Headers
    body: bytes = field(default=b"")


def new_request_id() -> str:
    # S3 request ids are 16 upper-case hex characters. They identify, they protect nothing, so
    # a per-process PRNG will do: os.urandom is a system call on every request.
    return f"{getrandbits(64):016X}"


def new_host_id() -> str:
    return base64.b64encode(getrandbits(384).to_bytes(48, "big")).decode()


def render(error: S3Error, resource: str, request_id: str, host_id: str) -> bytes:
    """The XML body S3 sends for an error; extra fields (Condition, ActualObjectSize) included."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
        f"<Code>{error.code}</Code>",
        f"<Message>{escape(error.message)}</Message>",
    ]
    parts.extend(f"<{name}>{escape(value)}</{name}>" for name, value in error.fields.items())
    parts.append(f"<Resource>{escape(resource)}</Resource>")
    parts.append(f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>")
    return "".join(parts).encode()


class AccessDenied(S3Error):
    status = 403
    code = "AccessDenied"
    message = "Access Denied"


class SignatureDoesNotMatch(S3Error):
    status = 403
    code = "SignatureDoesNotMatch"
    message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


class InvalidAccessKeyId(S3Error):
    status = 403
    code = "InvalidAccessKeyId"
    message = "The AWS Access Key Id you provided does not exist in our records."


class RequestTimeTooSkewed(S3Error):
    status = 403
    code = "RequestTimeTooSkewed"
    message = "The difference between the request time and the current time is too large."


class AuthorizationHeaderMalformed(S3Error):
    status = 400
    code = "AuthorizationHeaderMalformed"
    message = "The authorization header is malformed."


class AuthorizationQueryParametersError(S3Error):
    status = 400
    code = "AuthorizationQueryParametersError"
    message = "Error parsing the X-Amz-Credential parameter."


class IncompleteBody(S3Error):
    status = 400
    code = "IncompleteBody"
    message = "You did not provide the number of bytes specified by the Content-Length HTTP header."


class XAmzContentSHA256Mismatch(S3Error):
    status = 400
    code = "XAmzContentSHA256Mismatch"
    message = "The provided 'x-amz-content-sha256' header does not match what was computed."


class BadDigest(S3Error):
    status = 400
    code = "BadDigest"
    message = (
        "The Content-MD5 or checksum value that you specified did not match what the server "
        "received."
    )


class InvalidDigest(S3Error):
    status = 400
    code = "InvalidDigest"
    message = "The Content-MD5 or checksum value that you specified is not valid."
