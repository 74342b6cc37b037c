"""The zstd frame format (RFC 8878 §3.1) as far as headers tell it: pure functions over
bytes, no decompression and no I/O. Used to find whole frames (the store's archive scan)
and to tell a whole file from a truncated one (analysis input)."""

from __future__ import annotations

from typing import Final

MAGIC: Final = 0xFD2FB528  # a zstd frame, little-endian
SKIPPABLE: Final = range(0x184D2A50, 0x184D2A60)  # skippable frames: magic, u32 size, data


def frame_header_size(descriptor: int) -> tuple[int, bool]:
    """(bytes of the frame header after the magic, whether a checksum ends the frame) for
    a Frame_Header_Descriptor byte."""
    fcs_flag, single = descriptor >> 6, (descriptor >> 5) & 1
    checksum, dict_flag = (descriptor >> 2) & 1, descriptor & 3
    header = 1 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    header += (1 if single else 0, 2, 4, 8)[fcs_flag]
    return header, bool(checksum)


def block(header: bytes | memoryview) -> tuple[bool, int] | None:
    """(last block?, bytes of the block after its 3-byte header) for a block header; None
    for the reserved block type (a corrupt frame)."""
    bh = header[0] | (header[1] << 8) | (header[2] << 16)
    last, btype, bsize = bh & 1, (bh >> 1) & 3, bh >> 3
    if btype == 3:
        return None
    return bool(last), 1 if btype == 1 else bsize
