"""The generated gRPC code under serve/proto is committed: it must be what the proto gives.

Regenerated here with the pinned grpcio-tools into a temporary folder; a difference means
serve/proto/pinstream.proto changed without regenerating (the command is in its header).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[3]
PROTO = "serve/proto/pinstream.proto"
GENERATED = ("pinstream_pb2.py", "pinstream_pb2.pyi", "pinstream_pb2_grpc.py")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("proto")
    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / PROTO),
    ]
    assert protoc.main(args) == 0, "protoc failed on " + PROTO
    return out / "serve" / "proto"


@pytest.mark.parametrize("name", GENERATED)
def test_committed_generated_code_is_what_the_proto_gives(regenerated: Path, name: str) -> None:
    committed = (ROOT / "serve" / "proto" / name).read_text()
    assert committed == (regenerated / name).read_text(), (
        f"serve/proto/{name} is stale: regenerate it with the command in {PROTO}"
    )


def test_the_service_has_the_http_operations() -> None:
    from serve.proto import pinstream_pb2 as pb

    methods = pb.DESCRIPTOR.services_by_name["PinSearch"].methods_by_name
    assert sorted(methods) == ["GetPin", "Healthz", "Related", "Search", "SearchBatch"]
    assert pb.DESCRIPTOR.package == "pinstream.v1"
