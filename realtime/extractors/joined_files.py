"""Files that registry size limits split into parts, joined once into the cache: the join goes
through a temporary file renamed into place (a killed join never leaves a file that looks whole),
and processes that join at the same time take turns on a lock file."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_COPY_CHUNK_BYTES = 16 << 20


def write_concatenated(target: Path, sources: tuple[Path, ...]) -> None:
    """Concatenate `sources` into `target` through a temp file in the same folder, then rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for src in sources:
                with src.open("rb") as f:
                    shutil.copyfileobj(f, out, _COPY_CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp_name, 0o644)  # mkstemp makes 0600; the cache is readable like any download
        os.replace(tmp_name, target)  # atomic on one filesystem: old or new, never half
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


@contextmanager
def join_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on `<folder>/.join.lock` (released by the kernel if the holder dies)."""
    with open(folder / ".join.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
