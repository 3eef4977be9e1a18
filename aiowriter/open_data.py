"""The Open Data schema (`ma.streaming.open_data.v1`) as typed betterproto2 classes.

Generated from ``protos/`` by ``nox -s protos`` into ``aiowriter._proto``; this module is the
public door to them::

    from aiowriter import open_data
    open_data.PeriodicDataPacket(start_time=..., interval=..., columns=[...])

betterproto2 spells a few names its own way: enum members lose their prefix
(``DataStatus.VALID`` for ``DATA_STATUS_VALID``) and ``RawCANDataPacket`` is
``RawCanDataPacket``. The wire ``Packet.type`` string is still ``"RawCANData"``.

``bytes(message)`` serializes a message: it is the counterpart of C#'s ``ToByteString()``
(``Packet(content=bytes(periodic))`` for ``Content = periodic.ToByteString()``), and
``open_data.PeriodicDataPacket.parse(data)`` the counterpart of ``Parser.ParseFrom(data)``.
Times (``start_time``, ``interval``, ``timestamps``, ...) are nanoseconds since the Unix epoch.
Encoding for the hot path does not go through these classes (see ``aiowriter.packets``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import betterproto2
from betterproto2.utils import classproperty

from ._proto.ma.streaming.open_data.v1 import *  # noqa: F403
from ._proto.ma.streaming.open_data.v1 import __all__ as __all__


class _MessageMetadata(classproperty[Any, Any]):
    """``Message._betterproto`` that answers ``AttributeError`` on non-message classes.

    ``help()`` and ``inspect.classify_class_attrs`` read every attribute on every class of the
    MRO with ``getattr(cls, name, None)``, which only tolerates ``AttributeError``. betterproto2
    0.10 builds the proto metadata lazily in that property and asserts that the class is a
    dataclass, so reading it on the abstract base ``betterproto2.Message`` raised
    ``AssertionError`` and ``help(open_data.Packet)`` crashed (upstream:
    betterproto/python-betterproto2#185). Generated messages (dataclasses) are unaffected.
    """

    def __get__(self, instance: Any, owner: Any) -> Any:
        if not dataclasses.is_dataclass(owner):
            raise AttributeError(
                f"{owner.__qualname__} is not a generated message and has no proto metadata"
            )
        return self.__func__(owner)


def _patch_message_metadata() -> None:
    # Patched at import, not in aiowriter/_proto: the generated code is never hand-edited,
    # and the flaw is in the runtime's base class, not in the generated classes.
    current = betterproto2.Message.__dict__.get("_betterproto")
    if type(current) is classproperty:  # a future betterproto2 may change it: then leave it
        betterproto2.Message._betterproto = _MessageMetadata(current.__func__)  # type: ignore[method-assign]


_patch_message_metadata()
