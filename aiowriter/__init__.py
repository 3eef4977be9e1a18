"""aiowriter: asyncio-native writer of Open Data telemetry to Apache Kafka.

Writes packets exactly where the Motion Applied Open Streaming Architecture's Stream API server
would put them (topics, partitions, record keys, ``Packet.type`` strings, session and data-format
records), so the official readers see them. Public names live here; ``aiowriter.open_data``
holds the schema classes, ``aiowriter.packets`` the packet builders and ``aiowriter.testing`` a
local Kafka broker and pytest fixtures.
"""

import contextlib

from . import open_data as open_data
from . import packets as packets
from ._config import ProducerSettings as ProducerSettings
from ._config import QueueLimits as QueueLimits
from ._config import SecuritySettings as SecuritySettings
from ._config import StreamCreationStrategy as StreamCreationStrategy
from ._config import StreamingConfig as StreamingConfig
from ._config_sources import config_from_env as config_from_env
from ._config_sources import config_from_file as config_from_file
from ._config_sources import config_from_mapping as config_from_mapping
from ._encoding.encoded import EncodedPacket as EncodedPacket
from ._events import Subscription as Subscription
from ._exceptions import AiowriterError as AiowriterError
from ._exceptions import AuthenticationError as AuthenticationError
from ._exceptions import AuthorizationError as AuthorizationError
from ._exceptions import BrokerUnavailableError as BrokerUnavailableError
from ._exceptions import BufferFullError as BufferFullError
from ._exceptions import ConfigurationError as ConfigurationError
from ._exceptions import ConnectionSecurityError as ConnectionSecurityError
from ._exceptions import DataFormatError as DataFormatError
from ._exceptions import DataFormatNotFoundError as DataFormatNotFoundError
from ._exceptions import DeliveryError as DeliveryError
from ._exceptions import DeliveryTimeoutError as DeliveryTimeoutError
from ._exceptions import EncodingError as EncodingError
from ._exceptions import InvalidInputError as InvalidInputError
from ._exceptions import InvalidNameError as InvalidNameError
from ._exceptions import InvalidPacketError as InvalidPacketError
from ._exceptions import KafkaError as KafkaError
from ._exceptions import PacketTooLargeError as PacketTooLargeError
from ._exceptions import SessionConflictError as SessionConflictError
from ._exceptions import SessionEndedError as SessionEndedError
from ._exceptions import SessionError as SessionError
from ._exceptions import SessionKeyConflictError as SessionKeyConflictError
from ._exceptions import SessionKeyMismatchError as SessionKeyMismatchError
from ._exceptions import SessionNotFoundError as SessionNotFoundError
from ._exceptions import TlsError as TlsError
from ._exceptions import TopicLayoutError as TopicLayoutError
from ._exceptions import WriterClosedError as WriterClosedError
from ._formats import DataFormat as DataFormat
from ._formats import DataFormatManager as DataFormatManager
from ._formats import DataFormatManagerStatistics as DataFormatManagerStatistics
from ._formats import DataSourceFormats as DataSourceFormats
from ._formats import FormatUpdated as FormatUpdated
from ._observability.health import Health as Health
from ._observability.health import ManagerHealth as ManagerHealth
from ._observability.statistics import StopReport as StopReport
from ._observability.statistics import StreamStatistics as StreamStatistics
from ._observability.statistics import WriterStatistics as WriterStatistics
from ._result import ApiResult as ApiResult
from ._sessions import SessionManager as SessionManager
from ._sessions import SessionManagerStatistics as SessionManagerStatistics
from ._sessions import SessionResult as SessionResult
from ._sessions import SessionScope as SessionScope
from ._sessions.state import SessionAssociated as SessionAssociated
from ._sessions.state import SessionEnded as SessionEnded
from ._sessions.state import SessionEvent as SessionEvent
from ._sessions.state import SessionInfo as SessionInfo
from ._sessions.state import SessionStarted as SessionStarted
from ._sessions.state import SessionUpdated as SessionUpdated
from ._telemetry import Telemetry as Telemetry
from ._telemetry import TelemetryStatistics as TelemetryStatistics
from ._writing.delivery import Deliveries as Deliveries
from ._writing.delivery import Delivery as Delivery
from ._writing.delivery import DeliveryReport as DeliveryReport
from ._writing.delivery import WriteResult as WriteResult
from ._writing.writer import InfoType as InfoType
from ._writing.writer import PacketWriter as PacketWriter

__version__ = "0.1.0"

__all__ = [
    "AiowriterError",
    "ApiResult",
    "AuthenticationError",
    "AuthorizationError",
    "BrokerUnavailableError",
    "BufferFullError",
    "ConfigurationError",
    "ConnectionSecurityError",
    "DataFormat",
    "DataFormatError",
    "DataFormatManager",
    "DataFormatManagerStatistics",
    "DataFormatNotFoundError",
    "DataSourceFormats",
    "Deliveries",
    "Delivery",
    "DeliveryError",
    "DeliveryReport",
    "DeliveryTimeoutError",
    "EncodedPacket",
    "EncodingError",
    "FormatUpdated",
    "Health",
    "InfoType",
    "InvalidInputError",
    "InvalidNameError",
    "InvalidPacketError",
    "KafkaError",
    "ManagerHealth",
    "PacketTooLargeError",
    "PacketWriter",
    "ProducerSettings",
    "QueueLimits",
    "SecuritySettings",
    "SessionAssociated",
    "SessionConflictError",
    "SessionEnded",
    "SessionEndedError",
    "SessionError",
    "SessionEvent",
    "SessionInfo",
    "SessionKeyConflictError",
    "SessionKeyMismatchError",
    "SessionManager",
    "SessionManagerStatistics",
    "SessionNotFoundError",
    "SessionResult",
    "SessionScope",
    "SessionStarted",
    "SessionUpdated",
    "StopReport",
    "StreamCreationStrategy",
    "StreamStatistics",
    "StreamingConfig",
    "Subscription",
    "Telemetry",
    "TelemetryStatistics",
    "TlsError",
    "TopicLayoutError",
    "WriteResult",
    "WriterClosedError",
    "WriterStatistics",
    "config_from_env",
    "config_from_file",
    "config_from_mapping",
    "open_data",
    "packets",
]


def _publish() -> None:
    # Public objects report the public module, so reprs, tracebacks and docs never show the
    # private module they happen to live in (as httpcore and trio do).
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("aiowriter._"):
            with contextlib.suppress(AttributeError, TypeError):  # e.g. a type alias
                obj.__module__ = "aiowriter"


_publish()
