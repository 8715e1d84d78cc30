"""A protoc plugin that produces grpcio-tools' Python output, so buf can generate the Python stubs.

grpcio-tools bundles protoc's Python and .pyi generators and the gRPC Python generator inside a Python
extension rather than as plugin binaries buf could call. This plugin hands the descriptors buf parsed to
that bundled compiler and returns its files, so the stubs come from the grpcio-tools version pinned in
pyproject.toml and match what `python -m grpc_tools.protoc` writes.

The option `package=NAME` (buf's `opt:`) places the stubs under the Python package NAME instead of the
proto's own path: `broker_gateway/v1/x.proto` becomes `NAME/v1/x_pb2.py`, importing its siblings from
`NAME.v1`. The Python client (clients/python) carries its own copy that way, so it needs no server
package. Only the Python module paths change; the embedded descriptors stay byte for byte the same,
so both copies can be loaded in one process (the descriptor pool accepts an identical file twice).

The option `grpc_pyi` adds a `.pyi` for each `_pb2_grpc.py` (grpcio-tools writes none), from
mypy-protobuf's gRPC generator run in the same process: the stubs' classes and methods, typed for both
`grpc` and `grpc.aio` channels, so a caller's type checker sees a misspelt RPC or a wrong request type.
"""

import re
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc
from mypy_protobuf.main import Descriptors, GRPCType, generate_mypy_grpc_stubs


def relocate(name: str, content: str, package: str) -> tuple[str, str]:
    """Move one generated file from the proto's top-level directory to `package`.

    Written here rather than with protoletariat (which rewrites imports after generation, as a separate
    step over files on disk): the module paths sit in two places the generator always spells the same
    way, the imports of sibling stubs and the module name given to the message builder, and the plugin
    already holds every file it returns.
    """
    root, _, rest = name.partition("/")
    module_path = re.compile(rf"(?<![\w./]){re.escape(root)}(?=\.\w+(?: import |\.\w+_pb2\b))")
    return f"{package}/{rest}", module_path.sub(package, content)


def generate(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """Run the bundled compiler over the request's descriptors and collect what it writes."""
    options = dict(option.partition("=")[::2] for option in request.parameter.split(",") if option)
    package = options.get("package")
    response = plugin_pb2.CodeGeneratorResponse(
        supported_features=plugin_pb2.CodeGeneratorResponse.FEATURE_PROTO3_OPTIONAL
    )
    with tempfile.TemporaryDirectory() as workdir:
        descriptors = Path(workdir, "descriptors.binpb")
        descriptors.write_bytes(
            descriptor_pb2.FileDescriptorSet(file=request.proto_file).SerializeToString()
        )
        out = Path(workdir, "out")
        out.mkdir()
        status = protoc.main(
            [
                "protoc",
                f"--descriptor_set_in={descriptors}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--grpc_python_out={out}",
                *request.file_to_generate,
            ]
        )
        if status != 0:
            response.error = f"grpc_tools.protoc exited with {status}"
            return response
        generated = [(path.relative_to(out).as_posix(), path.read_text()) for path in out.rglob("*") if path.is_file()]
    if "grpc_pyi" in options:
        generated += grpc_type_stubs(request)
    for name, content in sorted(generated):
        if package:
            name, content = relocate(name, content, package)
        response.file.add(name=name, content=content)
    return response


def grpc_type_stubs(request: plugin_pb2.CodeGeneratorRequest) -> list[tuple[str, str]]:
    """mypy-protobuf's `_pb2_grpc.pyi` files for the request's protos, sync and grpc.aio alike."""
    typed = plugin_pb2.CodeGeneratorResponse()
    generate_mypy_grpc_stubs(
        Descriptors(request), typed, quiet=True, readable_stubs=False, relax_strict_optional_primitives=False,
        use_default_deprecation_warnings=False, generate_concrete_servicer_stubs=False, grpc_type=GRPCType.BOTH,
    )
    return [(file.name, file.content) for file in typed.file]


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    sys.stdout.buffer.write(generate(request).SerializeToString())


if __name__ == "__main__":
    main()
