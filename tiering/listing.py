"""Listing a prefix upstream (ListObjectsV2, every page), for warm-up."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from urllib.parse import quote

from tiering.upstream import Upstream, UpstreamAnswer

PAGE_LIMIT_BYTES = 16 << 20


async def list_prefix(
    upstream: Upstream, bucket: str, prefix: str
) -> AsyncIterator[tuple[str, int]]:
    """(key, size) of every object under the prefix, in the upstream's order."""
    token: str | None = None
    while True:
        pairs = [("list-type", "2"), ("prefix", prefix)]
        if token is not None:
            pairs.append(("continuation-token", token))
        query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(pairs)
        )
        answer = await upstream.fetch(
            "GET", f"/{quote(bucket, safe='')}", {}, PAGE_LIMIT_BYTES, query
        )
        if answer.status != 200:
            raise UpstreamAnswer(answer.status, list(answer.headers), answer.body)
        root = ET.fromstring(answer.body)
        for item in _children(root, "Contents"):
            yield _text(item, "Key"), int(_text(item, "Size") or 0)
        if _text(root, "IsTruncated") != "true":
            return
        token = _text(root, "NextContinuationToken")


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if child.tag.rsplit("}", 1)[-1] == name]


def _text(element: ET.Element, name: str) -> str:
    found = _children(element, name)
    return (found[0].text or "") if found else ""
