"""The repeat filter that keeps outage logs to about a line per cause per interval."""

from __future__ import annotations

import logging
import time

import pytest

from aiowriter._observability import log_throttle
from aiowriter._observability.log_throttle import (
    KAFKA_LOGGERS,
    RepeatFilter,
    throttle_kafka_logs,
    unthrottle_kafka_logs,
)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def logger() -> tuple[logging.Logger, _Collect]:
    logger = logging.getLogger("test.throttle")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = _Collect()
    logger.handlers = [handler]
    logger.filters = []
    return logger, handler


def test_one_line_per_cause_per_interval(logger: tuple[logging.Logger, _Collect]) -> None:
    log, out = logger
    f = RepeatFilter(interval=0.3)
    log.addFilter(f)
    for node in range(1000):  # a flood of one cause with varying arguments
        log.error("Unable connect to node with id %s: %s", node % 3, "refused")
    log.error("Unable to update metadata from %s", [1])  # another cause
    assert out.lines == ["Unable connect to node with id 0: refused",
                         "Unable to update metadata from [1]"]  # fmt: skip
    assert f.suppressed == 999
    time.sleep(0.35)
    log.error("Unable connect to node with id %s: %s", 1, "refused")
    assert out.lines[-1].startswith("Unable connect to node with id 1: refused [repeated 999 more")
    assert "since" in out.lines[-1]
    log.error("Unable connect to node with id %s: %s", 1, "refused")
    assert len(out.lines) == 3  # throttled again; the count starts afresh


def test_preformatted_numbers_are_one_cause(logger: tuple[logging.Logger, _Collect]) -> None:
    log, out = logger
    log.addFilter(RepeatFilter(interval=60))
    for n in range(50):
        log.warning(f"{n} packet(s) expired")
    assert out.lines == ["0 packet(s) expired"]


def test_debug_and_info_pass(logger: tuple[logging.Logger, _Collect]) -> None:
    log, out = logger
    log.addFilter(RepeatFilter(interval=60))
    for _ in range(10):
        log.debug("detail %s", 1)
        log.info("progress")
    assert len(out.lines) == 20


def test_kafka_loggers_throttled_while_writers_run() -> None:
    users = log_throttle._users
    kafka = logging.getLogger(KAFKA_LOGGERS[0])
    throttle_kafka_logs()
    throttle_kafka_logs()
    try:
        assert log_throttle._kafka_filter in kafka.filters
        unthrottle_kafka_logs()
        assert (log_throttle._kafka_filter in kafka.filters) == (users + 1 > 0)
    finally:
        unthrottle_kafka_logs()
    assert (log_throttle._kafka_filter in kafka.filters) == (users > 0)
    # aiowriter's own loggers are always throttled.
    assert log_throttle._sdk_filter in logging.getLogger("aiowriter.writer").filters
