"""Reading a request body safely: a size limit, Content-Encoding (zstd, gzip), JSON, nesting.

The size limit (``didban serve --max-body``) applies to the bytes received *and* to the
decompressed size, so a small compressed bomb is refused like a large body (413). The
JSON may nest at most ``BODY_DEPTH`` levels of objects and arrays — one more than a
measurement may (``model.admission.MAX_DEPTH``), for the envelope around ``content`` —
checked right after decoding, before anything else looks at the value (400).
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
import zstandard
from fastapi import HTTPException, Request

from didban.model.admission import MAX_DEPTH, nests_deeper_than

BODY_DEPTH = MAX_DEPTH + 1


async def read_json(request: Request, limit: int) -> Any:
    """The decoded JSON body, or an HTTPException (413/415/400) with a clear message."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"the body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "zstd":
        try:
            raw = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
        except zstandard.ZstdError as exc:
            raise HTTPException(400, f"the body is not valid zstd data ({exc})") from None
    elif encoding == "gzip":
        try:
            d = zlib.decompressobj(wbits=31)
            raw = d.decompress(raw, limit + 1)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise HTTPException(400, f"the body is not valid gzip data ({exc})") from None
    elif encoding not in ("identity", ""):
        raise HTTPException(
            415, f"Content-Encoding {encoding!r} is not supported (use zstd or gzip)"
        )
    if len(raw) > limit:
        raise HTTPException(413, f"the decompressed body is larger than the limit of {limit} bytes")
    if not raw.strip():
        raise HTTPException(400, "the body is empty; send a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise HTTPException(400, _too_deep("the body", BODY_DEPTH)) from None
        raise HTTPException(400, f"the body is not valid JSON ({exc})") from None
    if nests_deeper_than(value, BODY_DEPTH):
        raise HTTPException(400, _too_deep("the body", BODY_DEPTH))
    return value


def _too_deep(what: str, limit: int) -> str:
    return f"{what} nests more than {limit} levels of objects and arrays"


def decode_content(text: str) -> Any:
    """A measurement sent as a JSON string (OONI's ``submit_measurement``), decoded; its
    nesting is checked by ``model.admission`` like any measurement's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc) or "recursion" in str(exc):
            raise HTTPException(400, _too_deep("content", MAX_DEPTH)) from None
        raise HTTPException(400, f"content is not valid JSON ({exc})") from None
