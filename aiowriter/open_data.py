"""The Open Data schema (`ma.streaming.open_data.v1`) as typed betterproto2 classes.

Generated from ``protos/`` by ``nox -s protos`` into ``aiowriter._proto``; this module is the
public door to them::

    from aiowriter import open_data
    open_data.PeriodicDataPacket(start_time=..., interval=..., columns=[...])

betterproto2 spells a few names its own way: enum members lose their prefix
(``DataStatus.VALID`` for ``DATA_STATUS_VALID``) and ``RawCANDataPacket`` is
``RawCanDataPacket``. The wire ``Packet.type`` string is still ``"RawCANData"``.
Encoding for the hot path does not go through these classes (see ``aiowriter.packets``).
"""

from ._proto.ma.streaming.open_data.v1 import *  # noqa: F403
from ._proto.ma.streaming.open_data.v1 import __all__ as __all__
