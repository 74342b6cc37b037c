"""An anonymous, read-only S3 client: ListObjectsV2 and GET, on httpx2.

Anonymous reads of a public bucket need no request signing, so the whole protocol used
here is two unsigned HTTP requests (Amazon S3 API reference: ``ListObjectsV2``,
``GetObject``, ``HeadObject``): ``GET /?list-type=2&prefix=…&continuation-token=…``
answering XML, and ``GET /<key>`` with ``Range`` and ``If-Match`` to resume a partial file
of the same object version. The reasons for this over botocore are in docs/scale.md.

* **Addressing**: OONI's buckets by their virtual-hosted name
  (``https://<bucket>.s3.<region>.amazonaws.com``); with ``endpoint_url`` (any
  S3-compatible store: MinIO, Ceph, moto, a mirror) path style, ``<endpoint>/<bucket>``.
* **Retries**: connection failures, timeouts, a connection dropped mid-body, and answers
  500, 502, 503 (``SlowDown``), 504 and 429 are retried with exponential backoff and full
  jitter; a download resumes at the byte it reached. Other answers are one sentence
  (``S3Error``), taken from S3's ``<Error><Code>…<Message>`` body when there is one.
* **Bytes as stored**: objects are read with ``aiter_raw`` and ``Accept-Encoding:
  identity``, so a ``Content-Encoding: gzip`` object is never decoded on the way (the
  ETag is the MD5 of the stored bytes).
"""

from __future__ import annotations

import asyncio
import random
import re
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

import httpx2

RETRY_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_RANGE: Final = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
T = TypeVar("T")


class S3Error(Exception):
    """A request that failed for good; the message is one sentence for the user."""


class _Retryable(Exception):
    """A transient failure (a 5xx, a 429, a short body): try again after a pause."""


@dataclass(frozen=True)
class S3Object:
    key: str
    size: int
    etag: str  # without its quotes


@dataclass(frozen=True)
class Listing:
    objects: list[S3Object]
    prefixes: list[str]  # CommonPrefixes, when listing with a delimiter


def aws_endpoint(bucket: str, region: str) -> str:
    if region == "us-east-1":
        return f"https://{bucket}.s3.amazonaws.com"
    return f"https://{bucket}.s3.{region}.amazonaws.com"


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(node: ET.Element, name: str) -> str:
    for c in node:
        if _local(c.tag) == name:
            return c.text or ""
    return ""


def parse_listing(body: bytes) -> tuple[Listing, str | None]:
    """The objects and common prefixes of one ListObjectsV2 page, and the continuation
    token when the answer is truncated."""
    root = ET.fromstring(body)
    url_encoded = _child(root, "EncodingType") == "url"

    def text(s: str) -> str:
        return urllib.parse.unquote_plus(s) if url_encoded else s

    objects, prefixes = [], []
    for node in root:
        tag = _local(node.tag)
        if tag == "Contents":
            objects.append(
                S3Object(
                    key=text(_child(node, "Key")),
                    size=int(_child(node, "Size") or 0),
                    etag=_child(node, "ETag").strip('"'),
                )
            )
        elif tag == "CommonPrefixes":
            prefixes.append(text(_child(node, "Prefix")))
    token = _child(root, "NextContinuationToken") or None
    truncated = _child(root, "IsTruncated") == "true"
    return Listing(objects, prefixes), token if truncated else None


def error_sentence(status: int, body: bytes, what: str) -> str:
    code = message = ""
    try:
        root = ET.fromstring(body) if body.strip() else None
    except ET.ParseError:
        root = None
    if root is not None and _local(root.tag) == "Error":
        code, message = _child(root, "Code"), _child(root, "Message")
    if code == "NoSuchBucket":
        return f"{what}: no such bucket at this endpoint"
    if status == 403:
        return f"{what}: the server refused anonymous access (HTTP 403{' ' + code if code else ''})"
    detail = f"{code}: {message}" if code else f"HTTP {status}"
    return f"{what}: {detail.rstrip('.')}"


class AnonymousS3:
    """Unsigned reads from one S3 endpoint, with retries; use as an async context."""

    def __init__(
        self,
        endpoint_url: str | None,
        *,
        regions: dict[str, str] | None = None,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 60.0,
        connections: int = 8,
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.regions = regions or {}
        self.retries = retries
        self.backoff = backoff
        self.retried = 0  # transient failures overcome, for the report
        self._client = httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout, connect=min(timeout, 20.0)),
            limits=httpx2.Limits(
                max_connections=connections, max_keepalive_connections=connections
            ),
            headers={"Accept-Encoding": "identity", "User-Agent": "didban-ooni-sync"},
            follow_redirects=False,
        )

    async def __aenter__(self) -> AnonymousS3:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    def bucket_url(self, bucket: str) -> str:
        if self.endpoint_url:
            return f"{self.endpoint_url}/{bucket}"
        return aws_endpoint(bucket, self.regions.get(bucket, "us-east-1"))

    def object_url(self, bucket: str, key: str) -> str:
        return f"{self.bucket_url(bucket)}/{urllib.parse.quote(key, safe='/~')}"

    async def _retrying(self, what: str, op: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                return await op()
            except (httpx2.TransportError, _Retryable) as exc:
                attempt += 1
                if attempt > self.retries:
                    reason = str(exc) or type(exc).__name__
                    raise S3Error(
                        f"{what}: gave up after {self.retries} retries ({reason})"
                    ) from None
                self.retried += 1
                await asyncio.sleep(random.uniform(0, min(30.0, self.backoff * 2**attempt)))

    async def list(
        self, bucket: str, prefix: str, *, delimiter: str | None = None, page_size: int = 1000
    ) -> Listing:
        """Every object (and common prefix) under ``prefix``, following continuation tokens."""
        objects: list[S3Object] = []
        prefixes: list[str] = []
        token: str | None = None
        while True:
            params = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
            params["max-keys"] = str(page_size)
            if delimiter:
                params["delimiter"] = delimiter
            if token:
                params["continuation-token"] = token

            async def page(params: dict[str, str] = params) -> bytes:
                r = await self._client.get(self.bucket_url(bucket) + "/", params=params)
                if r.status_code in RETRY_STATUS:
                    raise _Retryable(f"HTTP {r.status_code}")
                if r.status_code != 200:
                    raise S3Error(error_sentence(r.status_code, r.content, f"s3://{bucket}"))
                return r.content

            body = await self._retrying(f"listing s3://{bucket}/{prefix}", page)
            try:
                listing, token = parse_listing(body)
            except ET.ParseError:
                raise S3Error(
                    f"listing s3://{bucket}/{prefix}: the server's answer is not S3 XML"
                ) from None
            objects.extend(listing.objects)
            prefixes.extend(listing.prefixes)
            if token is None:
                return Listing(objects, prefixes)
            if token == params.get("continuation-token"):
                raise S3Error(f"listing s3://{bucket}/{prefix}: the server repeats its page")

    async def part_size(self, bucket: str, key: str) -> int | None:
        """The size of part 1 of a multipart object (``HEAD ?partNumber=1``), or None when
        the server does not say."""

        async def head() -> int | None:
            r = await self._client.head(self.object_url(bucket, key), params={"partNumber": "1"})
            if r.status_code in RETRY_STATUS:
                raise _Retryable(f"HTTP {r.status_code}")
            if r.status_code not in (200, 206) or "x-amz-mp-parts-count" not in r.headers:
                return None
            length = r.headers.get("content-length", "")
            return int(length) if length.isdigit() else None

        return await self._retrying(f"s3://{bucket}/{key}", head)

    async def download(
        self, bucket: str, obj: S3Object, path: Path, on_bytes: Callable[[int], None]
    ) -> int:
        """Fetch ``obj`` into ``path``, appending to what ``path`` already holds (a partial
        download of the same ETag); returns the offset it resumed from. Every GET carries
        ``If-Match`` with the listed ETag, so bytes of two versions never mix."""
        what = f"s3://{bucket}/{obj.key}"
        url = self.object_url(bucket, obj.key)
        first_offset = path.stat().st_size if path.exists() else 0

        async def attempt() -> None:
            offset = path.stat().st_size if path.exists() else 0
            if offset > obj.size:
                path.unlink()
                offset = 0
            if offset == obj.size:
                return
            headers = {"If-Match": f'"{obj.etag}"'}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            async with self._client.stream("GET", url, headers=headers) as r:
                if r.status_code in RETRY_STATUS:
                    raise _Retryable(f"HTTP {r.status_code}")
                if r.status_code == 412:
                    raise S3Error(f"{what} changed since it was listed; run the sync again")
                if r.status_code == 416:  # the part is longer than the object: start over
                    path.unlink()
                    raise _Retryable("HTTP 416")
                if r.status_code == 206 and offset:
                    m = _RANGE.match(r.headers.get("content-range", ""))
                    if not m or int(m[1]) != offset:
                        raise S3Error(f"{what}: the server answered the wrong byte range")
                    mode = "ab"
                elif r.status_code == 200:  # no range asked, or the server ignored it
                    mode = "wb"
                else:
                    body = await r.aread()
                    raise S3Error(error_sentence(r.status_code, body, what))
                with path.open(mode) as fh:
                    async for chunk in r.aiter_raw():
                        fh.write(chunk)
                        fh.flush()  # to the kernel: a killed process loses nothing received
                        on_bytes(len(chunk))
            if path.stat().st_size < obj.size:
                raise _Retryable("the connection ended before the whole object arrived")

        await self._retrying(what, attempt)
        return first_offset
