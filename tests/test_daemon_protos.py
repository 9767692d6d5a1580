"""The checked-in gRPC modules match what `python -m protos.generate` makes from the .proto today."""

from __future__ import annotations

from pathlib import Path

from protos import generate


def test_generated_modules_match_proto(tmp_path):
    written = generate.generate(tmp_path)

    assert len(written) == 3
    for fresh in written:
        relative = fresh.relative_to(tmp_path)
        checked_in = generate.PROTO_ROOT / relative
        assert checked_in.is_file(), f"{relative} is not checked in; run python -m protos.generate"
        assert fresh.read_bytes() == checked_in.read_bytes(), f"{relative} is stale; run python -m protos.generate"


def test_service_module_imports_messages_relatively():
    service_module = generate.PROTO_ROOT / "headshot" / "v1" / "headshot_pb2_grpc.py"

    text = service_module.read_text(encoding="utf-8")

    assert "from . import headshot_pb2 as" in text
    assert "from headshot.v1 import" not in text


def test_request_message_mirrors_pipeline_request():
    from pipeline.request import JobRequest
    from protos.headshot.v1 import headshot_pb2

    message_fields = set(headshot_pb2.JobRequest.DESCRIPTOR.fields_by_name)
    dataclass_fields = set(JobRequest.__dataclass_fields__)

    assert dataclass_fields <= message_fields
    assert message_fields - dataclass_fields == {"output_dir"}
