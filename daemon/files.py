"""File operations the daemon needs to be crash-safe: atomic writes and copies, checksums."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Iterable

from pipeline.atomic import atomic_output

CHUNK_SIZE = 1024 * 1024  # also the largest chunk the API streams


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(target: Path, blocks: Iterable[bytes], mode: int = 0o644) -> tuple[int, str]:
    """Publish `blocks` under `target` in one rename; return (size in bytes, sha256).

    A reader never sees a partial file, and a failure leaves `target` as it was.
    """
    digest = hashlib.sha256()
    size = 0
    # The hot folder reads ".partial" as a daemon copy that may still be running after the bridge restarts.
    with atomic_output(Path(target), mode, suffix=".partial") as handle:
        for block in blocks:
            handle.write(block)
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def read_blocks(path: Path, block_size: int = CHUNK_SIZE):
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            yield block


def copy_atomically(source: Path, target: Path) -> tuple[int, str]:
    return write_atomically(target, read_blocks(source))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
