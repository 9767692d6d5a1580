"""The allocator setting that lets a job reuse its freed buffers instead of mapping fresh pages for each."""

from __future__ import annotations

import resource
import sys

import numpy as np
import pytest

from pipeline.memory import release_free_memory, reuse_freed_memory

BUFFER_BYTES = 64 * 2**20  # like a 2200 × 2200 region's three float planes


def _page_faults_of_a_new_buffer() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    buffer = np.ones(BUFFER_BYTES // 4, dtype=np.float32)  # every page written
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    del buffer
    return faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the setting is glibc's")
def test_reused_buffer_needs_no_new_pages():
    if not reuse_freed_memory():
        pytest.skip("the C library is not glibc")
    _page_faults_of_a_new_buffer()  # the heap grows once
    reused = _page_faults_of_a_new_buffer()
    release_free_memory()
    after_release = _page_faults_of_a_new_buffer()

    # Mapping fresh memory faults once per page or per larger folio, whichever the kernel uses: hundreds of times.
    assert after_release >= 16
    assert reused <= after_release // 20
