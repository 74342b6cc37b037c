"""Sync from OONI's public S3 archive: ``didban ooni sync`` (docs/scale.md).

``selection`` (what to fetch, which keys), ``s3`` (anonymous ListObjectsV2 + GET with
retries and resume), ``verify`` (size and ETag MD5s), ``manifest`` (what is already
there, and the destination's lock), ``cans`` (one country out of legacy tar.lz4 cans),
``sync`` (the run), ``cli`` (the command).
"""
