"""Writing a file whole or not at all, the one way the harness does it (reports, the failure
database, the JAX reference's kernels): an audit killed mid-write, a full disk, or two processes
writing the same file never leave a half-written file where a reader looks."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once: mkstemp's files are private, the harness's are as readable as any other file


def write_whole(path: Path, data: str | bytes) -> None:
    """`data` at `path`, whole or not at all: written beside it under a temporary name
    (".NAME.*.tmp"), then renamed into place. A write that fails (a full disk) leaves no temporary
    file behind, and its OSError names `path`."""
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as error:
        if error.filename is None:
            error.filename = str(path)
        raise error from None
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.chmod(temporary, 0o666 & ~_UMASK)
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            error.filename, error.filename2 = str(path), None  # the file meant, not the temporary name
            raise error from None
        raise
