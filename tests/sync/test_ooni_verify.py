"""ETag checks: single-part MD5, multipart MD5 with a known or guessed part size, and the
honest "size only" when the part size cannot be found."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from didban.store.oonisync.verify import MIB, check


def multipart_etag(data: bytes, part: int) -> str:
    digests = b"".join(hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part))
    return f"{hashlib.md5(digests).hexdigest()}-{-(-len(data) // part)}"


def test_single_part_md5(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"hello")
    good = hashlib.md5(b"hello").hexdigest()
    assert check(f, 5, good).how == "md5"
    assert check(f, 5, f'"{good}"').ok
    bad = check(f, 5, hashlib.md5(b"hellO").hexdigest())
    assert not bad.ok and bad.how == "MD5 differs from the ETag"
    assert check(f, 6, good) == check(f, 6, good) and not check(f, 6, good).ok
    assert check(f, 6, good).how == "size 5 instead of 6"
    assert not check(tmp_path / "missing", 5, good).ok


def test_multipart_with_the_servers_part_size(tmp_path: Path) -> None:
    data = os.urandom(10_000)
    f = tmp_path / "x"
    f.write_bytes(data)
    etag = multipart_etag(data, 4096)
    got = check(f, len(data), etag, part_size_hint=4096)
    assert got.ok and got.how == "multipart md5" and got.part_size == 4096
    f.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert not check(f, len(data), etag, part_size_hint=4096).ok


def test_multipart_guesses_the_common_client_part_sizes(tmp_path: Path) -> None:
    data = os.urandom(17 * MIB + 5)  # 3 parts of 8 MiB (aws-cli, boto3), or 4 of 5 MiB
    f = tmp_path / "x"
    f.write_bytes(data)
    for part in (8 * MIB, 5 * MIB):
        got = check(f, len(data), multipart_etag(data, part))
        assert got.ok and got.how == "multipart md5" and got.part_size == part


def test_multipart_with_an_unknown_part_size_is_size_only(tmp_path: Path) -> None:
    data = os.urandom(9_000)
    f = tmp_path / "x"
    f.write_bytes(data)
    got = check(f, len(data), multipart_etag(data, 3000))
    assert got.ok and got.how == "size"
    assert not check(f, len(data) + 1, multipart_etag(data, 3000)).ok


def test_an_etag_that_is_no_md5_is_size_only(tmp_path: Path) -> None:
    f = tmp_path / "x"
    f.write_bytes(b"abc")
    assert check(f, 3, "not-an-md5").how == "size"
