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
                                   (raised by the upstream client, tiering/upstream.py)

Upstream answers are not ours to reword: a 404 NoSuchKey or a 403 AccessDenied reaches the
client byte for byte, so clients see exactly what S3 said.

Request ids. S3 sends `x-amz-request-id` and `x-amz-id-2` with every answer, and an error's XML
repeats them as `<RequestId>` and `<HostId>`; SDKs log the header and compare it with the body.
An error s3tier writes carries its own ids in both. An answer replayed from the upstream keeps
the upstream's ids, which are the ones S3 support can trace: the body's `<RequestId>` when it
has one (so header and body agree), else the upstream's header; s3tier's ids fill in only what
the upstream left out (moto sends no `x-amz-id-2`; a HEAD error has no body). Bodies are never
rewritten (`with_ids`).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from random import getrandbits
from xml.sax.saxutils import escape

# Raised where the upstream is called (tiering/ imports nothing from proxy/), drawn and
# answered here with the rest.
from tiering.upstream import UpstreamAnswer as UpstreamAnswer

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


@dataclass(frozen=True, slots=True)
class RequestIds:
    """The ids of one request s3tier answers: its x-amz-request-id and x-amz-id-2."""

    request_id: str
    host_id: str

    @classmethod
    def new(cls) -> RequestIds:
        return cls(new_request_id(), new_host_id())

    @property
    def headers(self) -> Headers:
        request_id, host_id = self.request_id.encode(), self.host_id.encode()
        return [(b"x-amz-request-id", request_id), (b"x-amz-id-2", host_id)]


ID_HEADERS = frozenset({b"x-amz-request-id", b"x-amz-id-2"})
# An id is a printable token: no space, no "<", nothing that could end a header line.
_BODY_REQUEST_ID = re.compile(rb"<RequestId>([!-;=-~]{1,1024})</RequestId>")
_BODY_HOST_ID = re.compile(rb"<HostId>([!-;=-~]{1,1024})</HostId>")
# Where an upstream's own request id may be: S3's header, then the spelling of AWS's JSON
# protocols, which moto sends on S3 answers too.
_UPSTREAM_REQUEST_ID = (b"x-amz-request-id", b"x-amzn-requestid")


def with_ids(headers: Headers, body: bytes, own: RequestIds) -> Headers:
    """An upstream answer's headers, carrying the two id headers S3 always sends.

    Each id is the upstream's when it sent one (the error document's first, so that header and
    body agree, then its header), else s3tier's own. See the module docstring.
    """
    sent = {name.lower(): value for name, value in headers}
    request_id = _search(_BODY_REQUEST_ID, body)
    request_id = request_id or next((sent[n] for n in _UPSTREAM_REQUEST_ID if n in sent), None)
    host_id = _search(_BODY_HOST_ID, body) or sent.get(b"x-amz-id-2")
    kept = [(name, value) for name, value in headers if name.lower() not in ID_HEADERS]
    return [
        *kept,
        (b"x-amz-request-id", request_id or own.request_id.encode()),
        (b"x-amz-id-2", host_id or own.host_id.encode()),
    ]


def _search(pattern: re.Pattern[bytes], body: bytes) -> bytes | None:
    found = pattern.search(body) if body else None
    return found.group(1) if found else None


def new_request_id() -> str:
    # S3 request ids are 16 upper-case hex characters. They identify, they protect nothing, so
    # a per-process PRNG will do: os.urandom is a system call on every request.
    return new_request_id_bytes().decode()


def new_host_id() -> str:
    return new_host_id_bytes().decode()


def new_request_id_bytes() -> bytes:
    return b"%016X" % getrandbits(64)


def new_host_id_bytes() -> bytes:
    return base64.b64encode(getrandbits(384).to_bytes(48, "big"))


def render(error: S3Error, resource: str, ids: RequestIds) -> bytes:
    """The XML body S3 sends for an error; extra fields (Condition, ActualObjectSize) included."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error>',
        f"<Code>{error.code}</Code>",
        f"<Message>{escape(error.message)}</Message>",
    ]
    parts.extend(f"<{name}>{escape(value)}</{name}>" for name, value in error.fields.items())
    parts.append(f"<Resource>{escape(resource)}</Resource>")
    parts.append(f"<RequestId>{ids.request_id}</RequestId><HostId>{ids.host_id}</HostId></Error>")
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
