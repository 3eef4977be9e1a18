"""Rate limiting of repeated log lines during a broker outage.

aiokafka logs every failed connection and metadata attempt at ERROR: thousands of lines a second
with many clients during an outage (107 MB in 75 s in one service). :class:`RepeatFilter` lets
the first line of each cause through and then at most one line per ``interval`` (10 s) per
cause, with how many were held back and since when. A cause is the logger plus the message
template (the format string before its arguments), so "Unable connect to node with id 1" and
"... id 2" count as one cause.

The filter sits on aiokafka's loggers while at least one writer runs (:func:`throttle_kafka_logs`
counts them) and on aiowriter's own loggers always. DEBUG and INFO records pass untouched: only
WARNING and above are throttled, so raising a logger to DEBUG still shows everything.
"""

from __future__ import annotations

import logging
import re
import threading
import time

__all__ = [
    "KAFKA_LOGGERS",
    "SDK_LOGGERS",
    "RepeatFilter",
    "throttle_kafka_logs",
    "unthrottle_kafka_logs",
]

#: aiokafka's loggers that report connection trouble (``aiokafka`` is its client's logger).
KAFKA_LOGGERS = (
    "aiokafka",
    "aiokafka.conn",
    "aiokafka.cluster",
    "aiokafka.admin.client",
    "aiokafka.producer.producer",
    "aiokafka.producer.sender",
    "aiokafka.consumer.consumer",
    "aiokafka.consumer.fetcher",
    "aiokafka.consumer.group_coordinator",
)
#: aiowriter's loggers that warn about failed packets (throttled always).
SDK_LOGGERS = ("aiowriter.writer", "aiowriter.follow", "aiowriter.managed", "aiowriter.health")

#: Seconds between two lines of the same cause (one line per 10 s is well under the budget of
#: one line per second per cause; the health log says what is wrong and since when).
DEFAULT_INTERVAL = 10.0
_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Passes the first WARNING+ record of a cause, then one per ``interval`` per cause."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        super().__init__()
        self.interval = interval
        # cause -> (time of the last line let through, lines held back since, first held at)
        self._seen: dict[tuple[str, str], tuple[float, int, float]] = {}
        self._lock = threading.Lock()  # handlers may log from threads (aiokafka does not)
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        template = record.msg if isinstance(record.msg, str) else repr(record.msg)
        if not record.args:
            # Preformatted messages carry their numbers inline: ids and counts are not causes.
            template = _DIGITS.sub("#", template)
        cause = (record.name, template[:200])
        now = time.monotonic()
        with self._lock:
            last = self._seen.get(cause)
            if last is not None and now - last[0] < self.interval:
                held_since = last[2] if last[1] else time.time()
                self._seen[cause] = (last[0], last[1] + 1, held_since)
                self.suppressed += 1
                return False
            self._seen[cause] = (now, 0, 0.0)
            if len(self._seen) > 1000:  # unbounded causes (odd templates): forget the oldest
                for key in list(self._seen)[:500]:
                    del self._seen[key]
        if last is not None and last[1]:
            since = time.strftime("%H:%M:%S", time.localtime(last[2]))
            record.msg = f"{record.getMessage()} [repeated {last[1]} more time(s) since {since}]"
            record.args = ()
        return True


_kafka_filter = RepeatFilter()
_sdk_filter = RepeatFilter()
_users = 0
_lock = threading.Lock()

for _name in SDK_LOGGERS:
    logging.getLogger(_name).addFilter(_sdk_filter)


def _kafka_loggers() -> list[logging.Logger]:
    names = set(KAFKA_LOGGERS)
    # Any other aiokafka logger already created (new aiokafka versions may add some).
    names.update(n for n in logging.Logger.manager.loggerDict if n.startswith("aiokafka"))
    return [logging.getLogger(n) for n in sorted(names)]


def throttle_kafka_logs() -> None:
    """Put the repeat filter on aiokafka's loggers (counted: one call per running writer)."""
    global _users
    with _lock:
        _users += 1
        if _users == 1:
            for logger in _kafka_loggers():
                logger.addFilter(_kafka_filter)


def unthrottle_kafka_logs() -> None:
    """Undo one :func:`throttle_kafka_logs`; the last one takes the filter off again."""
    global _users
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0:
            for logger in _kafka_loggers():
                logger.removeFilter(_kafka_filter)
