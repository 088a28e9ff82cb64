"""The one error type of client.records."""

from __future__ import annotations


class CorruptRecordError(ValueError):
    """Bytes that are not a valid record batch v2, or whose records do not decode.

    Raised for anything read from the network or disk that breaks the format:
    bad magic, a batchLength that disagrees with the bytes, a CRC mismatch, a
    compressed stream that does not decompress (or would decompress beyond its
    bound), a records area that does not decode. A broker answers it with
    CORRUPT_MESSAGE. Subclasses ValueError so callers that treat any bad input
    alike can catch that.
    """


class DecompressedTooLargeError(CorruptRecordError):
    """A compressed stream that would decompress beyond its bound: a broker
    answers MESSAGE_TOO_LARGE (the records are too large, not damaged)."""
