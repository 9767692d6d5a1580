"""File operations the daemon needs to be crash-safe: atomic writes and copies, checksums, folder fsync."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

CHUNK_SIZE = 1024 * 1024  # also the largest chunk the API streams


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_SIZE), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_folder(folder: Path) -> None:
    """Make a rename or new file in `folder` durable; a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_atomically(target: Path, blocks: Iterable[bytes], mode: int = 0o644) -> tuple[int, str]:
    """Write `blocks` to a temporary file beside `target`, fsync it and rename it over `target`.

    Returns (size in bytes, sha256). A reader never sees a partial file, and a
    failure leaves `target` as it was.
    """
    target = Path(target)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(descriptor, "wb") as handle:
            for block in blocks:
                handle.write(block)
                digest.update(block)
                size += len(block)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)
    return size, digest.hexdigest()


def read_blocks(path: Path, block_size: int = CHUNK_SIZE):
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(block_size), b""):
            yield block


def copy_atomically(source: Path, target: Path) -> tuple[int, str]:
    return write_atomically(target, read_blocks(source))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
