"""aiowriter: asyncio-native writer of Open Data telemetry to Apache Kafka (provisional init)."""
from ._config import ProducerSettings, QueueLimits, SecuritySettings, StreamCreationStrategy, StreamingConfig
from ._exceptions import *  # noqa: F403
from ._result import ApiResult
from . import open_data
from ._writer import PacketWriter, InfoType
from ._delivery import Delivery, DeliveryReport, WriteResult
from ._encoded import EncodedPacket
