"""The compiled schema is exactly the facts table, and the committed generated code is current.

The table lives in the steering repo's ``shared/wire/open-data-fields.md``; a copy is committed
under ``tests/data`` so the test also runs from a clone without ``shared/`` (and a third test
keeps the copy equal to the original where both exist).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[1]
PROTO = "ma/streaming/open_data/v1/open_data.proto"
SHARED_TABLE = ROOT.parent / "shared" / "wire" / "open-data-fields.md"
COPY_TABLE = ROOT / "tests" / "data" / "open-data-fields.md"

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    "string": FDP.TYPE_STRING,
    "bytes": FDP.TYPE_BYTES,
    "bool": FDP.TYPE_BOOL,
    "double": FDP.TYPE_DOUBLE,
    "uint64": FDP.TYPE_UINT64,
    "int64": FDP.TYPE_INT64,
    "uint32": FDP.TYPE_UINT32,
    "int32": FDP.TYPE_INT32,
    "fixed64": FDP.TYPE_FIXED64,
}


def parse_table(
    text: str,
) -> tuple[dict[str, list[tuple[int, str, str, str]]], dict[str, dict[int, str]]]:
    messages: dict[str, list[tuple[int, str, str, str]]] = {}
    enums: dict[str, dict[int, str]] = {}
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        lines = block.strip().splitlines()
        kind, name = lines[0].split()
        rows = [
            [c.strip() for c in line.strip().strip("|").split("|")]
            for line in lines[1:]
            if line.startswith("|")
        ][2:]
        if kind == "enum":
            enums[name] = {int(v): n for v, n in rows}
        else:
            messages[name] = [(int(num), f, t, label) for num, f, t, label in rows]
    return messages, enums


@pytest.fixture(scope="module")
def table() -> tuple[dict[str, list[tuple[int, str, str, str]]], dict[str, dict[int, str]]]:
    path = SHARED_TABLE if SHARED_TABLE.exists() else COPY_TABLE
    return parse_table(path.read_text())


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorProto:
    out = tmp_path_factory.mktemp("desc") / "set.pb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--descriptor_set_out={out}",
            PROTO,
        ],
        check=True,
    )
    fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    (fd,) = [f for f in fds.file if f.name == PROTO]
    return fd


def describe_field(msg: descriptor_pb2.DescriptorProto, field: FDP) -> tuple[str, str]:
    """(type, label) of a compiled field, spelled as the facts table spells them."""
    if field.type == FDP.TYPE_MESSAGE and field.label == FDP.LABEL_REPEATED:
        entry = next(
            (
                n
                for n in msg.nested_type
                if "." + n.name == field.type_name.rsplit(msg.name, 1)[-1] and n.options.map_entry
            ),
            None,
        )
        if entry is not None:
            k, v = entry.field
            return f"map<{_type_name(k)}, {_type_name(v)}>", ""
    label = ""
    if field.label == FDP.LABEL_REPEATED:
        label = "repeated"
    elif field.proto3_optional:
        label = "optional"
    elif field.HasField("oneof_index"):
        label = f"oneof {msg.oneof_decl[field.oneof_index].name}"
    return _type_name(field), label


def _type_name(field: FDP) -> str:
    for name, t in SCALARS.items():
        if field.type == t:
            return name
    name = field.type_name.lstrip(".")
    return name.removeprefix("ma.streaming.open_data.v1.")


def test_package_and_syntax(compiled: descriptor_pb2.FileDescriptorProto) -> None:
    assert compiled.package == "ma.streaming.open_data.v1"
    assert compiled.syntax == "proto3"


def test_compiled_schema_equals_facts_table(
    table: tuple[dict[str, list[tuple[int, str, str, str]]], dict[str, dict[int, str]]],
    compiled: descriptor_pb2.FileDescriptorProto,
) -> None:
    messages, enums = table
    got_messages = {
        m.name: [(f.number, f.name, *describe_field(m, f)) for f in m.field]
        for m in compiled.message_type
    }
    got_enums = {e.name: {v.number: v.name for v in e.value} for e in compiled.enum_type}
    assert sorted(got_messages) == sorted(messages)
    for name, fields in messages.items():
        assert sorted(got_messages[name]) == sorted(fields), name
    assert got_enums == enums


def test_betterproto2_classes_match_table(
    table: tuple[dict[str, list[tuple[int, str, str, str]]], dict[str, dict[int, str]]],
) -> None:
    import dataclasses

    from aiowriter import open_data

    messages, enums = table
    for name, fields in messages.items():
        cls = getattr(open_data, name.replace("RawCANData", "RawCanData"))
        numbers = {
            f.name: f.metadata["betterproto"].number
            for f in dataclasses.fields(cls)
            if "betterproto" in f.metadata
        }
        assert numbers == {f: num for num, f, _t, _l in fields}, name
    for name, values in enums.items():
        enum = getattr(open_data, name)
        assert {m.value for m in enum} == set(values), name


def test_generated_code_is_current(tmp_path: Path) -> None:
    """``nox -s protos`` would not change the committed ``aiowriter/_proto``."""
    pytest.importorskip("betterproto2_compiler", reason="needs betterproto2-compiler (dev extra)")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--python_betterproto2_out={tmp_path}",
            PROTO,
        ],
        check=True,
        capture_output=True,
    )
    committed = ROOT / "aiowriter" / "_proto"
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.py"))
    assert generated, "the compiler produced nothing"
    # Compared as syntax trees: the compiler formats with whatever ruff is installed, and a
    # formatter's whims must not count as a schema change.
    stale = [
        str(p)
        for p in generated
        if not (committed / p).exists()
        or ast.dump(ast.parse((tmp_path / p).read_text()))
        != ast.dump(ast.parse((committed / p).read_text()))
    ]
    assert not stale, f"regenerate with 'nox -s protos': {stale}"


@pytest.mark.skipif(not SHARED_TABLE.exists(), reason="shared/ is not beside this checkout")
def test_committed_table_copy_is_current() -> None:
    assert COPY_TABLE.read_text() == SHARED_TABLE.read_text()
