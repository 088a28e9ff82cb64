"""Pinned buffers: lookups answer the same as with the plain buffer, and an
unpinned mmap can close (the index files rely on both)."""

from __future__ import annotations

import mmap
import struct

import pytest

from riverlog.native import compiled, twin


@pytest.mark.parametrize("impl", [compiled, twin], ids=["compiled", "twin"])
def test_pinned_lookups_match_plain_ones_and_release_the_map(impl, tmp_path):
    offsets = bytes().join(struct.pack(">II", 3 * i, 100 * i) for i in range(500))
    times = bytes().join(struct.pack(">qI", 10 * i, i) for i in range(500))
    for data, entries, lookup in ((offsets, 500, impl.offset_index_lookup), (times, 500, impl.time_index_lookup)):
        path = tmp_path / "idx"
        path.write_bytes(data)
        with open(path, "r+b") as f:
            mm = mmap.mmap(f.fileno(), len(data))
            pinned = impl.pin_buffer(mm)
            for target in (-(2**70), -5, 0, 1, 299, 300, 1497, 4999, 5000, 10**12, 2**70):
                assert lookup(pinned, entries, target) == lookup(data, entries, target)
            for n in (0, 1, 17, entries):
                assert lookup(pinned, n, 1000) == lookup(data, n, 1000)
            for bad in (entries + 1, -1, 2**70):
                with pytest.raises(ValueError):
                    lookup(pinned, bad, 0)
            with pytest.raises(TypeError):
                lookup(pinned, 1.0, 0)
            impl.unpin_buffer(pinned)
            mm.close()  # would raise BufferError if the pin were still held
