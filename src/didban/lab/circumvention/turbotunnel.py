"""The protocol layers a Snowflake client stacks on its WebRTC data channel, as the lab's
Snowflake server stand-in needs them: encapsulation, KCP and smux (sans-IO, bytes in,
bytes out).

Written from the formats, not from their implementations:

* **encapsulation** (Snowflake ``common/encapsulation``): a stream of chunks, each a
  length prefix then that many bytes; the prefix's first byte has bit 7 set for data (clear
  for padding), bit 6 "more length bytes follow", 6 bits of length; up to two more bytes of
  7 bits each (bit 7: more follow). A client's stream starts with Snowflake's 8-byte turbo
  tunnel token and its 8-byte client id (``common/turbotunnel``).
* **KCP** (the segment layout of kcp-go, which Snowflake runs without encryption or FEC):
  24-byte little-endian header ``conv u32, cmd u8 (81 push, 82 ack, 83 window ask, 84
  window tell), frg u8, wnd u16, ts u32, sn u32, una u32, len u32``, then data; several
  segments may share one packet. The client runs in stream mode (``frg`` 0), so the
  receiving side is a byte stream in ``sn`` order.
* **smux v2** (xtaci/smux): frames ``ver u8 (2), cmd u8 (0 SYN, 1 FIN, 2 PSH, 3 NOP, 4 UPD),
  length u16 LE, sid u32 LE``; UPD carries ``consumed u32, window u32`` (flow control).

The stand-in is deliberately small: the carrier (a data channel relayed over a WebSocket)
is reliable, so KCP here acknowledges every segment, delivers in order and resends what is
not acknowledged after a timeout, without congestion control; smux ignores the client's
window (a lab bootstrap moves a few tens of kilobytes).
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

TOKEN: Final = bytes.fromhex("1293605d278175f5")  # Snowflake's turbotunnel.Token
CLIENT_ID_SIZE: Final = 8

PUSH: Final = 81
ACK: Final = 82
WASK: Final = 83
WINS: Final = 84
KCP_HEADER: Final = struct.Struct("<IBBHIIII")
MTU: Final = 1400
MSS: Final = MTU - KCP_HEADER.size
WINDOW: Final = 1024
RTO: Final = 0.5

SYN, FIN, PSH, NOP, UPD = 0, 1, 2, 3, 4
SMUX_HEADER: Final = struct.Struct("<BBHI")
SMUX_VERSION: Final = 2
SMUX_WINDOW: Final = 1 << 20


# --- encapsulation ---------------------------------------------------------------------------


class Decapsulator:
    """Turns a byte stream into the data chunks it carries (padding dropped)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            parsed = self._next()
            if parsed is None:
                return out
            if parsed:
                out.append(parsed[0])

    def _next(self) -> tuple[bytes] | tuple[()] | None:
        buf = self._buf
        if not buf:
            return None
        first = buf[0]
        is_data, more, n = first & 0x80, first & 0x40, first & 0x3F
        i = 1
        while more:
            if i >= len(buf):
                return None
            if i >= 3:
                raise ValueError("encapsulation: length prefix too long")
            more = buf[i] & 0x80
            n = (n << 7) | (buf[i] & 0x7F)
            i += 1
        if len(buf) < i + n:
            return None
        chunk = bytes(buf[i : i + n])
        del buf[: i + n]
        return (chunk,) if is_data else ()


def encapsulate(data: bytes) -> bytes:
    """One data chunk with its length prefix."""
    n = len(data)
    if n < 1 << 6:
        prefix = bytes([0x80 | n])
    elif n < 1 << 13:
        prefix = bytes([0xC0 | (n >> 7), n & 0x7F])
    elif n < 1 << 20:
        prefix = bytes([0xC0 | (n >> 14), 0x80 | ((n >> 7) & 0x7F), n & 0x7F])
    else:
        raise ValueError("encapsulation: chunk too long")
    return prefix + data


# --- KCP -------------------------------------------------------------------------------------


@dataclass
class _Unacked:
    segment: bytes
    sent: float
    rto: float = RTO


def _now_ms() -> int:
    return int(time.monotonic() * 1000) & 0xFFFFFFFF


@dataclass
class KCP:
    """One KCP conversation, server side: ``input`` takes a packet and returns the stream
    bytes it completed; ``send`` queues stream bytes; ``packets`` returns what to put on
    the carrier now (acknowledgements, new and resent segments)."""

    conv: int
    rcv_nxt: int = 0
    snd_nxt: int = 0
    _received: dict[int, bytes] = field(default_factory=dict)
    _acks: list[tuple[int, int]] = field(default_factory=list)
    _unacked: dict[int, _Unacked] = field(default_factory=dict)
    _out: list[bytes] = field(default_factory=list)
    _tell: bool = False

    def _segment(self, cmd: int, ts: int, sn: int, data: bytes = b"") -> bytes:
        wnd = max(0, WINDOW - len(self._received))
        return KCP_HEADER.pack(self.conv, cmd, 0, wnd, ts, sn, self.rcv_nxt, len(data)) + data

    def input(self, packet: bytes) -> bytes:
        stream = bytearray()
        offset = 0
        while len(packet) - offset >= KCP_HEADER.size:
            conv, cmd, _frg, _wnd, ts, sn, una, length = KCP_HEADER.unpack_from(packet, offset)
            offset += KCP_HEADER.size
            data = packet[offset : offset + length]
            offset += length
            if conv != self.conv:
                continue
            for old in [s for s in self._unacked if s < una]:
                del self._unacked[old]
            if cmd == ACK:
                self._unacked.pop(sn, None)
            elif cmd == PUSH:
                self._acks.append((sn, ts))
                if self.rcv_nxt <= sn < self.rcv_nxt + WINDOW:
                    self._received.setdefault(sn, data)
                while self.rcv_nxt in self._received:
                    stream += self._received.pop(self.rcv_nxt)
                    self.rcv_nxt += 1
            elif cmd == WASK:
                self._tell = True
        return bytes(stream)

    def send(self, data: bytes) -> None:
        ts = _now_ms()
        for i in range(0, len(data), MSS):
            segment = self._segment(PUSH, ts, self.snd_nxt, data[i : i + MSS])
            self._unacked[self.snd_nxt] = _Unacked(segment, time.monotonic())
            self._out.append(segment)
            self.snd_nxt += 1

    def packets(self, now: float | None = None) -> list[bytes]:
        now = time.monotonic() if now is None else now
        segments = [self._segment(ACK, ts, sn) for sn, ts in self._acks]
        self._acks.clear()
        if self._tell:
            segments.append(self._segment(WINS, _now_ms(), 0))
            self._tell = False
        segments += self._out
        self._out.clear()
        for u in self._unacked.values():
            if now - u.sent >= u.rto:
                segments.append(u.segment)
                u.sent, u.rto = now, min(u.rto * 2, 8.0)
        return _pack(segments)

    @property
    def idle(self) -> bool:
        return not self._unacked


def _pack(segments: list[bytes]) -> list[bytes]:
    """Segments joined into packets of at most one MTU each."""
    packets: list[bytes] = []
    current = b""
    for s in segments:
        if current and len(current) + len(s) > MTU:
            packets.append(current)
            current = b""
        current += s
    if current:
        packets.append(current)
    return packets


def conv_of(packet: bytes) -> int | None:
    if len(packet) < KCP_HEADER.size:
        return None
    return int(struct.unpack_from("<I", packet)[0])


# --- smux ------------------------------------------------------------------------------------


@dataclass
class Mux:
    """The server side of one smux v2 session: parses the client's frames and calls
    ``on_open(sid)``, ``on_data(sid, bytes)``, ``on_close(sid)``; :meth:`frame` builds ours."""

    on_open: Callable[[int], None]
    on_data: Callable[[int, bytes], None]
    on_close: Callable[[int], None]
    _buf: bytearray = field(default_factory=bytearray)
    _consumed: dict[int, int] = field(default_factory=dict)
    _told: dict[int, int] = field(default_factory=dict)

    def feed(self, data: bytes) -> list[bytes]:
        """Consume stream bytes; return the frames to send back (window updates)."""
        self._buf += data
        replies: list[bytes] = []
        while len(self._buf) >= SMUX_HEADER.size:
            _ver, cmd, length, sid = SMUX_HEADER.unpack_from(self._buf)
            if len(self._buf) < SMUX_HEADER.size + length:
                break
            payload = bytes(self._buf[SMUX_HEADER.size : SMUX_HEADER.size + length])
            del self._buf[: SMUX_HEADER.size + length]
            if cmd == SYN:
                self._consumed[sid] = self._told[sid] = 0
                self.on_open(sid)
            elif cmd == PSH:
                self.on_data(sid, payload)
                self._consumed[sid] = self._consumed.get(sid, 0) + len(payload)
                if self._consumed[sid] - self._told.get(sid, 0) >= SMUX_WINDOW // 4:
                    self._told[sid] = self._consumed[sid]
                    replies.append(self.update(sid))
            elif cmd == FIN:
                self.on_close(sid)
        return replies

    def update(self, sid: int) -> bytes:
        body = struct.pack("<II", self._consumed.get(sid, 0) & 0xFFFFFFFF, SMUX_WINDOW)
        return self.frame(UPD, sid, body)

    @staticmethod
    def frame(cmd: int, sid: int, data: bytes = b"") -> bytes:
        return SMUX_HEADER.pack(SMUX_VERSION, cmd, len(data), sid) + data

    @classmethod
    def data_frames(cls, sid: int, data: bytes) -> bytes:
        return b"".join(
            cls.frame(PSH, sid, data[i : i + 65535]) for i in range(0, len(data), 65535)
        )
