"""Run every benchmark module's `main()` in turn (`make bench`, `python -m bench`)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path


def main() -> int:
    failed = []
    for module_info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda info: info.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bench.{module_info.name}")
        entry = getattr(module, "main", None)
        if entry is None:
            continue
        print(f"== bench.{module_info.name}", flush=True)
        started = time.perf_counter()
        try:
            entry()
        except Exception as error:  # one broken benchmark must not hide the others' figures
            failed.append(module_info.name)
            print(f"bench.{module_info.name} failed: {type(error).__name__}: {error}", flush=True)
        print(f"== bench.{module_info.name} took {time.perf_counter() - started:.1f} s", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
