"""Size-prefixed frames: a push decoder (h11 style) and an encoder.

Every request and response is an int32 big-endian size, then that many bytes.
`FrameDecoder` checks the size as soon as its 4 bytes arrive, so a hostile
prefix (negative, or 2 GiB) is refused before any of the body is buffered;
the buffer therefore never holds more than one maximum frame plus what the
caller fed in one call beyond it.
"""

from __future__ import annotations

import struct

from .errors import FrameTooLarge, LocalProtocolError, RemoteProtocolError

_SIZE = struct.Struct(">i")


def encode_frame(payload: bytes | bytearray | memoryview) -> bytes:
    if len(payload) > 0x7FFFFFFF:
        raise LocalProtocolError("frame payload above 2**31-1 bytes")
    return _SIZE.pack(len(payload)) + bytes(payload)


def read_frame_size(buf: bytes | bytearray | memoryview, pos: int, max_frame_bytes: int) -> int:
    """The size prefix at `pos`, refused if negative or above the maximum."""
    (size,) = _SIZE.unpack_from(buf, pos)
    if size < 0:
        raise RemoteProtocolError(f"negative frame size {size}")
    if size > max_frame_bytes:
        raise FrameTooLarge(f"frame of {size} bytes exceeds maximum {max_frame_bytes}")
    return size


class FrameDecoder:
    """Feed bytes with `feed()`, take whole frame payloads with `next_frame()`."""

    def __init__(self, max_frame_bytes: int) -> None:
        if not 0 <= max_frame_bytes <= 0x7FFFFFFF:
            raise ValueError(f"max_frame_bytes out of range: {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buf = bytearray()
        self._pos = 0  # start of the unread data in _buf
        self._need: int | None = None  # size of the frame being read, once known

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data
        self._check_size()

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf) - self._pos

    @property
    def frame_bytes(self) -> int | None:
        """The size of the frame being read, once its size prefix is in."""
        self._check_size()
        return self._need

    def _check_size(self) -> None:
        if self._need is None and len(self._buf) - self._pos >= 4:
            self._need = read_frame_size(self._buf, self._pos, self.max_frame_bytes)

    def next_frame(self) -> bytes | None:
        """The next complete payload (without its size), or None if incomplete."""
        self._check_size()
        need = self._need
        if need is None or len(self._buf) - self._pos - 4 < need:
            return None
        start = self._pos + 4
        with memoryview(self._buf) as view:  # one copy of the frame, not two
            frame = bytes(view[start : start + need])
        self._pos = start + need
        self._need = None
        # Compact once the consumed prefix dominates, to keep feeds amortised O(n).
        if self._pos > 65536 and self._pos * 2 > len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        self._check_size()
        return frame
