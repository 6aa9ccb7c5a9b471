"""The C heap under the pipeline: how much of it is in use, and giving its free pages back.

ONNX Runtime, CTranslate2 (Whisper), openSMILE and OpenCV allocate and free working buffers on
several threads. glibc keeps freed blocks in per-thread arenas for reuse, so over a long session
the resident size creeps up in steps although the memory in use does not grow. Remedies:
`limit_arenas()` caps glibc at two arenas for all threads (by default it makes up to eight per
core, each holding its own freed blocks), called first thing by every entry point;
`trim()` asks glibc to return free pages to the system (malloc_trim(0)), which the pipeline does
once a minute at no measurable cost; and `configure()` fixes glibc's mmap threshold at 1 MiB (by
default it rises to 32 MiB after the first large block is freed, after which every large
transient buffer is carved from an arena and stays there once freed), so large buffers are
mapped and unmapped whole. The second holds memory steadier but costs CPU (every large buffer
is a fresh mapping to fault in, and Whisper makes many), so the pipeline does not use it (the
soak and A/B figures are in docs/decisions.md).
`usage()` reads glibc's own totals (mallinfo2: bytes in use and bytes held free), which tell
a leak (in use grows) from retention (free grows). On a C library without these calls (macOS,
musl) both return None and the pipeline logs once that trimming is not available.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os
import tempfile

log = logging.getLogger(__name__)

_MALLINFO2_FIELDS = (
    "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
    "fordblks", "keepcost",
)  # fmt: skip


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.malloc_trim.restype = ctypes.c_int
        libc.mallinfo2.argtypes = []
        libc.mallinfo2.restype = _MallInfo2
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.fdopen.argtypes, libc.fdopen.restype = [ctypes.c_int, ctypes.c_char_p], ctypes.c_void_p
        libc.fclose.argtypes, libc.fclose.restype = [ctypes.c_void_p], ctypes.c_int
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.malloc_info.restype = ctypes.c_int
    except (OSError, AttributeError):  # not glibc, or glibc older than 2.33
        return None
    return libc


def available() -> bool:
    return _libc() is not None


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD_BYTES = 1 << 20


@functools.cache
def configure() -> bool:
    """Blocks of 1 MiB and more get their own mapping, returned to the system when freed (and
    glibc stops raising the threshold). Once per process; False where the C library cannot."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


M_ARENA_MAX = -8  # glibc's mallopt parameter number
DEFAULT_ARENAS = 2


def limit_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Let glibc keep at most `arenas` heaps for all threads (by default up to 8 per core).
    Freed blocks are then reused by whichever thread allocates next instead of sitting in the
    arena of the thread that freed them. glibc fixes its arena limit once it has made its ninth
    arena, so call this first thing in a process, before threads start (main.py,
    realtime.multi and the benchmarks do). False where the C library cannot, or where the
    environment already sets MALLOC_ARENA_MAX (the user's setting stands)."""
    if arenas < 1:
        raise ValueError(f"arenas must be >= 1, got {arenas}")
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def arena_count() -> int | None:
    """How many arenas glibc has made so far (from malloc_info's report); None where the C
    library cannot say."""
    libc = _libc()
    if libc is None:
        return None
    with tempfile.TemporaryFile() as report:
        stream = libc.fdopen(os.dup(report.fileno()), b"w")
        if not stream:
            return None
        try:
            libc.malloc_info(0, stream)
        finally:
            libc.fclose(stream)
        report.seek(0)
        return report.read().count(b"<heap nr=")


def trim() -> bool | None:
    """Give free heap pages back to the system. True if some were returned, None if the C
    library cannot (then nothing happens)."""
    libc = _libc()
    return None if libc is None else bool(libc.malloc_trim(0))


def usage() -> dict[str, float] | None:
    """The C heap in MiB: `in_use` (allocated blocks, small and mmapped) and `free` (freed blocks
    glibc holds for reuse), over all arenas; None where the C library cannot say."""
    libc = _libc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    mib = 2**20
    return {
        "in_use": round((info.uordblks + info.hblkhd) / mib, 1),
        "free": round(info.fordblks / mib, 1),
    }


class Trimmer:
    """Calls `trim()` at most once per `period_s` (monotonic seconds passed in)."""

    def __init__(self, period_s: float = 60.0) -> None:
        self.period_s = period_s
        self._next = 0.0
        self.trims = 0
        if not available():
            log.info("this C library cannot return freed heap pages (no glibc malloc_trim)")

    def tick(self, now_s: float) -> None:
        if now_s < self._next or not available():
            return
        self._next = now_s + self.period_s
        trim()
        self.trims += 1
