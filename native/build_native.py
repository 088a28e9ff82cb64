"""cffi builder for ``riverlog.native._native`` (out-of-line API mode).

Used two ways:

* by setuptools at install time, through ``cffi_modules`` in setup.py (the
  current directory is then the project root);
* by hand for a dev build, ``python native/build_native.py``, which compiles
  in a scratch directory and puts ``native/_native*.so`` where
  ``import riverlog.native._native`` finds it.

Paths are derived from this file, not from the current directory. The
declarations come from the marked part of ``riverlog_native.h``, so the C
header is the one place they are written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

from cffi import FFI

_NATIVE_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_NATIVE_DIR)


def _cdef_from_header() -> str:
    with open(os.path.join(_NATIVE_DIR, "riverlog_native.h"), encoding="utf-8") as f:
        header = f.read()
    found = re.search(r"/\* cdef-begin \*/(.*)/\* cdef-end \*/", header, re.S)
    if found is None:
        raise RuntimeError("riverlog_native.h lost its cdef markers")
    return found.group(1)


def make_builder(native_dir: str) -> FFI:
    """The builder, with the C sources found in native_dir (as given)."""
    builder = FFI()
    builder.cdef(_cdef_from_header())
    builder.set_source(
        "riverlog.native._native",
        '#include "riverlog_native.h"',
        sources=[os.path.join(native_dir, "riverlog_native.c"), os.path.join(native_dir, "py_records.c")],
        include_dirs=[native_dir],
        extra_compile_args=["-O2", "-Wall", "-Wextra"],
        # py_records.c uses CPython's full API (it makes Python objects),
        # so the module is built for this interpreter, not as abi3.
        py_limited_api=False,
    )
    return builder


# For setuptools, which runs from the project root and wants relative paths.
ffibuilder = make_builder(os.path.relpath(_NATIVE_DIR, _ROOT))


def build_in_place() -> str:
    """Compiles in a scratch directory, so that no project config (setup.py,
    pyproject.toml) is read, then moves the module into native/ under a new
    inode (a process that has the old one loaded keeps it intact)."""
    with tempfile.TemporaryDirectory(prefix="riverlog-native-") as scratch:
        built = make_builder(_NATIVE_DIR).compile(tmpdir=scratch, verbose=False)
        target = os.path.join(_NATIVE_DIR, os.path.basename(built))
        shutil.copyfile(built, target + ".tmp")
        os.replace(target + ".tmp", target)
    return target


if __name__ == "__main__":
    print(build_in_place())
