"""The raw archive: frames, crash tails, layout and the measurement uid scheme."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import zstandard

from didban.store import archive
from didban.store.uid import UID_RE, content_hash, make_uid


def test_frames_are_plain_zstd_and_scannable(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl.zst"
    for i in range(5):
        archive.append(p, [b'{"n": %d}' % i, b'{"m": %d}' % i])
    frames = list(archive.scan(p))
    assert [len(f.lines) for f in frames] == [2] * 5
    assert archive.read_frame(p, frames[3].offset, frames[3].length)[0] == b'{"n": 3}'
    text = zstandard.ZstdDecompressor().stream_reader(p.read_bytes(), read_across_frames=True)
    assert text.read().count(b"\n") == 10


def test_a_half_written_frame_is_not_scanned(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl.zst"
    archive.append(p, [b'{"n": 1}'])
    good = p.stat().st_size
    frame = zstandard.ZstdCompressor().compress(b'{"n": 2}\n' * 100)
    with p.open("ab") as fh:
        fh.write(frame[: len(frame) // 2])
    frames = list(archive.scan(p))
    assert len(frames) == 1 and frames[0].offset + frames[0].length == good


def test_layout_follows_ooni_buckets(tmp_path: Path) -> None:
    when = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
    p = archive.file_for(tmp_path, when, "IR", "web_connectivity")
    assert p.relative_to(tmp_path).as_posix() == (
        "20261121/09/IR/webconnectivity/2026112109_IR_webconnectivity.n0.0.jsonl.zst"
    )


def test_uid_follows_ooni_scheme_and_hash_ignores_key_order() -> None:
    a = {"b": 1, "a": [1, 2], "test_name": "web_connectivity"}
    b = orjson.loads(b'{"test_name":"web_connectivity","a":[1,2],"b":1}')
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash({**a, "b": 2})
    uid = make_uid(datetime(2021, 2, 8, 22, 7, 10, 181572, tzinfo=UTC), "MA", "ndt", "7888edc7" * 4)
    assert uid == "20210208220710.181572_MA_ndt_7888edc77888edc7"
    assert UID_RE.match(uid)
