"""``help()`` on every ``aiowriter.open_data`` class (betterproto2's base class used to make
``inspect`` raise AssertionError), and ``bytes(msg)`` as the counterpart of ``ToByteString()``."""

from __future__ import annotations

import inspect
import io
import pydoc

import betterproto2
import pytest

from aiowriter import open_data

NAMES = sorted(open_data.__all__)


@pytest.mark.parametrize("name", NAMES)
def test_help_renders_every_class(name: str) -> None:
    cls = getattr(open_data, name)
    out = io.StringIO()
    pydoc.Helper(output=out).help(cls)
    text = out.getvalue()
    assert name in text
    # inspect's classification (what IDEs and doc tools use) walks the base classes too.
    assert any(a.name == "__init__" for a in inspect.classify_class_attrs(cls))


def test_help_on_the_module() -> None:
    text = pydoc.render_doc(open_data, renderer=pydoc.plaintext)
    assert "PeriodicDataPacket" in text
    assert "ToByteString" in text  # the module docstring maps the C# call


def test_base_class_has_no_metadata_but_messages_do() -> None:
    with pytest.raises(AttributeError, match="not a generated message"):
        _ = betterproto2.Message._betterproto
    assert getattr(betterproto2.Message, "_betterproto", None) is None
    meta = open_data.Packet._betterproto
    assert "session_key" in meta.sorted_field_names


def test_bytes_is_to_byte_string_and_round_trips_after_help() -> None:
    pydoc.render_doc(open_data.PeriodicDataPacket)  # help() first must not disturb encoding
    periodic = open_data.PeriodicDataPacket(
        data_format=open_data.SampleDataFormat(data_format_identifier=1234),
        start_time=1_700_000_000_000_000_000,
        interval=1_000_000,
        columns=[
            open_data.SampleColumn(
                double_samples=open_data.DoubleSampleList(
                    samples=[open_data.DoubleSample(value=1.5, status=open_data.DataStatus.VALID)]
                )
            )
        ],
    )
    packet = open_data.Packet(
        type="PeriodicData", session_key="k", content=bytes(periodic), id=7, is_essential=False
    )
    back = open_data.Packet.parse(bytes(packet))
    assert back == packet
    assert open_data.PeriodicDataPacket.parse(back.content) == periodic
