"""Run every benchmark module in turn, each in a process of its own (`make bench`, `python -m bench`).

A process per module keeps one benchmark's memory and allocator settings out of the next one's figures.
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    failed = []
    for module_info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda info: info.name):
        if module_info.name.startswith("_"):
            continue
        print(f"== bench.{module_info.name}", flush=True)
        started = time.perf_counter()
        # One broken benchmark must not hide the others' figures.
        status = subprocess.run([sys.executable, "-m", f"bench.{module_info.name}"], cwd=Path(__file__).parent.parent).returncode
        if status != 0:
            failed.append(module_info.name)
            print(f"bench.{module_info.name} failed with exit status {status}", flush=True)
        print(f"== bench.{module_info.name} took {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
