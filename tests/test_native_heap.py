"""The C heap helpers: glibc's totals move the way they should, and trimming returns free pages."""

import ctypes
import ctypes.util
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from realtime import native_heap

pytestmark = pytest.mark.skipif(
    not native_heap.available(), reason="needs glibc >= 2.33 (malloc_trim, mallinfo2)"
)


def _libc():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
    return libc


def test_usage_tells_in_use_from_held_free_and_trim_gives_pages_back():
    libc = _libc()
    rss = psutil.Process().memory_info
    before = native_heap.usage()
    # 64 MiB in 2 KiB blocks (below the mmap threshold, so they come from the heap), touched.
    blocks = [libc.malloc(2048) for _ in range(32768)]
    for b in blocks:
        ctypes.memset(b, 1, 2048)
    held = native_heap.usage()
    assert held["in_use"] - before["in_use"] > 60
    # Free all but the last block: it pins the top of the heap, so glibc cannot shrink the heap
    # by itself and the freed 64 MiB stay resident as free blocks, the soak's pattern.
    for b in blocks[:-1]:
        libc.free(b)
    freed = native_heap.usage()
    assert freed["in_use"] - before["in_use"] < 4
    assert freed["free"] - held["free"] > 60  # (the blocks may have come from free chunks)
    rss_before_trim = rss().rss
    assert native_heap.trim() is True
    assert rss_before_trim - rss().rss > 32 * 2**20  # most of the 64 MiB went back
    libc.free(blocks[-1])


def test_trimmer_runs_at_most_once_per_period():
    trimmer = native_heap.Trimmer(period_s=60.0)
    for t in (0.0, 1.0, 59.0, 60.0, 61.0, 119.9, 120.0):
        trimmer.tick(t)
    assert trimmer.trims == 3  # at 0, 60 and 120


_LARGE_BLOCKS = """
import ctypes, ctypes.util, sys
from realtime import native_heap
if sys.argv[1] == "configure":
    assert native_heap.configure()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
libc.free(libc.malloc(4 << 20))  # glibc's default: this free raises the mmap threshold to 4 MiB
before = native_heap.usage()
blocks = [libc.malloc(4 << 20) for _ in range(16)]
pin = libc.malloc(200 << 10)  # from the top chunk: keeps the heap's top in use, so glibc cannot shrink it on its own
for b in blocks:
    ctypes.memset(b, 1, 4 << 20)
for b in blocks:
    libc.free(b)
print(native_heap.usage()["free"] - before["free"])
"""


def _held_after_large_blocks(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _LARGE_BLOCKS, mode], capture_output=True,
                         text=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.returncode == 0, out.stderr
    return float(out.stdout)


def test_after_configure_large_blocks_go_back_when_freed():
    # 16 blocks of 4 MiB allocated and freed after a first one: by default glibc has raised its
    # mmap threshold and keeps them as free heap; configured, each is unmapped when freed.
    assert _held_after_large_blocks("default") > 30
    assert _held_after_large_blocks("configure") < 8


_THREADS = """
import sys, threading
import numpy as np
from realtime import native_heap
if sys.argv[1] == "limit":
    assert native_heap.limit_arenas(2)
barrier = threading.Barrier(8)
def work():
    barrier.wait()  # all eight alive at once, so none can take over a finished thread's arena
    blocks = [np.ones(4096) for _ in range(64)]  # 32 KiB each: glibc heap, not mmap
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(native_heap.arena_count())
"""


def _arenas_after_threads(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _THREADS, mode], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_limit_arenas_keeps_threads_to_two_heaps():
    # Eight threads allocating at once: by default glibc gives most of them an arena of their
    # own; limited first thing in the process, they share two.
    assert _arenas_after_threads("default") >= 5
    assert _arenas_after_threads("limit") <= 2
    with pytest.raises(ValueError, match=">= 1"):
        native_heap.limit_arenas(0)
