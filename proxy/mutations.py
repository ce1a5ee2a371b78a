"""Which objects a forwarded request can change, so their cache entries go first. Pure."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from proxy.s3request import S3Request
from tiering.blocks import ObjectId

WRITE_METHODS = frozenset({"PUT", "POST", "DELETE"})
# DeleteObjects carries at most 1000 keys of at most 1024 bytes each.
DELETE_BODY_LIMIT = 4 << 20


def is_delete_objects(req: S3Request) -> bool:
    return req.method == "POST" and bool(req.bucket) and not req.key and _has(req, "delete")


def touched(req: S3Request, body: bytes | None = None) -> list[ObjectId]:
    """Objects a request may change: the key it names, or the keys of a DeleteObjects body.

    Any write naming a key counts (PutObject, CopyObject's destination, tagging, ACL, restore,
    CompleteMultipartUpload): being wrong about a harmless one costs one refetch, being wrong
    the other way serves a stale object.
    """
    if req.method not in WRITE_METHODS or not req.bucket:
        return []
    if req.key:
        return [ObjectId(req.bucket, req.key)]
    if is_delete_objects(req) and body:
        return [ObjectId(req.bucket, key) for key in delete_keys(body)]
    return []


def delete_keys(body: bytes) -> list[str]:
    """The <Key> of every <Object> in a DeleteObjects request; [] when it is not valid XML."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    return [el.text or "" for el in root.iter() if _local(el.tag) == "Key"]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _has(req: S3Request, name: str) -> bool:
    return any(k == name for k, _ in req.query)
