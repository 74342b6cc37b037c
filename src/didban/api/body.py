"""Reading a request body safely: a size limit, Content-Encoding (zstd, gzip) and JSON.

Limits apply to the bytes received *and* to the decompressed size, so a small
compressed bomb is refused like a large body (413).
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson
import zstandard
from fastapi import HTTPException, Request


async def read_json(request: Request, limit: int) -> Any:
    """The decoded JSON body, or an HTTPException (411/413/415/400) with a clear message."""
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
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HTTPException(400, f"the body is not valid JSON ({exc})") from None
