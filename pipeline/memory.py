"""The C allocator's settings for a job's large buffers (glibc on Linux; elsewhere nothing changes).

A job allocates and frees buffers of tens of megabytes, such as a region's colour planes, hundreds of times.
By default glibc maps each buffer above its mapping threshold (at most 32 MB) fresh from the kernel and unmaps
it on free. Every use then pays for page faults and zeroed pages, about a tenth of a 24-megapixel job's time. Once a job has run, freed
memory stays with the process for the next buffer and the next job. A long-running host such as the daemon
hands the free part back after a while without jobs.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

log = logging.getLogger(__name__)

# mallopt's parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_KEEP_FREED_BYTES = 2**31 - 1  # the largest value mallopt takes: the heap's free top is not given back by itself


@functools.lru_cache(maxsize=1)
def _glibc():
    """Return glibc with mallopt and malloc_trim, or None (another C library or system)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


@functools.lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """From now on, take large buffers from the heap and keep freed memory there for reuse; True where it applies.

    The setting is for the whole process and is made once.
    """
    libc = _glibc()
    if libc is None:
        return False
    applied = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, _KEEP_FREED_BYTES) == 1
    log.debug("large buffers reuse freed memory: %s", applied)
    return applied


def release_free_memory() -> None:
    """Give the memory that the process has freed but kept back to the system."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
