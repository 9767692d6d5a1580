"""Generate the Python modules for the daemon's API from protos/headshot/v1/headshot.proto.

Run `python -m protos.generate` after changing the .proto and commit the output;
a test regenerates into a temporary folder and compares, so the two never drift.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

PROTO_ROOT = Path(__file__).resolve().parent
PROTO_FILES = ("headshot/v1/headshot.proto",)

# protoc names sibling modules by their path from the include root ("from headshot.v1
# import headshot_pb2"); a relative import works wherever the package is installed.
_ABSOLUTE_SIBLING_IMPORT = re.compile(r"^from headshot\.v1 import (\w+_pb2) as", re.MULTILINE)


def generate(out_dir: Path = PROTO_ROOT) -> list[Path]:
    """Write the *_pb2.py, *_pb2.pyi and *_pb2_grpc.py files under `out_dir` and return their paths."""
    import grpc_tools
    from grpc_tools import protoc

    # 1. Run protoc with grpcio-tools' bundled well-known types (google/protobuf/*.proto).
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    out_dir.mkdir(parents=True, exist_ok=True)
    arguments = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTO_FILES,
    ]
    status = protoc.main(arguments)
    if status != 0:
        raise RuntimeError(f"protoc failed with exit status {status}: {' '.join(arguments)}")

    # 2. Make the service module import its messages relative to its own package.
    written = []
    for proto in PROTO_FILES:
        stem = out_dir / proto.removesuffix(".proto")
        service_module = stem.with_name(stem.name + "_pb2_grpc.py")
        text = service_module.read_text(encoding="utf-8")
        service_module.write_text(_ABSOLUTE_SIBLING_IMPORT.sub(r"from . import \1 as", text), encoding="utf-8")
        written += [stem.with_name(stem.name + suffix) for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate the daemon's gRPC modules from the .proto files.")
    parser.add_argument("--out", type=Path, default=PROTO_ROOT, help="folder to write into (default: next to the .proto files)")
    arguments = parser.parse_args(argv)
    for path in generate(arguments.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
