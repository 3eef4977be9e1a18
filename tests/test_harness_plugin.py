"""The pytest plugin's choice of broker: AIOWRITER_KAFKA, and the fallback when Docker answers
but the testcontainers Kafka cannot start."""

from __future__ import annotations

from typing import NoReturn

import pytest

from aiowriter.testing import BrokerStartError, pytest_plugin


class _LocalStarted(Exception):
    """Stands in for the local broker's start: proves the plugin went on to it."""


def _start_local(**_kwargs: object) -> NoReturn:
    raise _LocalStarted


@pytest.fixture
def no_kafka_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("KAFKA_BOOTSTRAP_SERVERS", "AIOWRITER_KAFKA", "KAFKA_REQUIRED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("PYTEST_XDIST_TESTRUNUID", raising=False)
    return monkeypatch


def test_docker_answers_but_container_fails_falls_back_to_local(
    no_kafka_env: pytest.MonkeyPatch,
) -> None:
    def no_testcontainers() -> NoReturn:
        raise ModuleNotFoundError("No module named 'testcontainers'")

    no_kafka_env.setattr(pytest_plugin, "_docker_answers", lambda: True)
    no_kafka_env.setattr(pytest_plugin, "_kafka_container", no_testcontainers)
    no_kafka_env.setattr(pytest_plugin, "start_local_kafka", _start_local)
    with (
        pytest.warns(UserWarning, match="testcontainers Kafka container did not start"),
        pytest.raises(_LocalStarted),
    ):
        next(pytest_plugin._bootstrap_servers())


def test_aiowriter_kafka_testcontainers_does_not_fall_back(
    no_kafka_env: pytest.MonkeyPatch,
) -> None:
    no_kafka_env.setenv("AIOWRITER_KAFKA", "testcontainers")
    no_kafka_env.setattr(pytest_plugin, "_docker_answers", lambda: False)
    no_kafka_env.setattr(pytest_plugin, "start_local_kafka", _start_local)
    with pytest.raises(pytest.skip.Exception, match="no Docker daemon answers"):
        next(pytest_plugin._bootstrap_servers())


def test_aiowriter_kafka_local_ignores_the_environment_broker(
    no_kafka_env: pytest.MonkeyPatch,
) -> None:
    no_kafka_env.setenv("AIOWRITER_KAFKA", "local")
    no_kafka_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    no_kafka_env.setattr(pytest_plugin, "start_local_kafka", _start_local)
    with pytest.raises(_LocalStarted):
        next(pytest_plugin._bootstrap_servers())


def test_aiowriter_kafka_env_needs_the_variable(no_kafka_env: pytest.MonkeyPatch) -> None:
    no_kafka_env.setenv("AIOWRITER_KAFKA", "env")
    no_kafka_env.setenv("KAFKA_REQUIRED", "1")
    with pytest.raises(pytest.fail.Exception, match="KAFKA_BOOTSTRAP_SERVERS is not set"):
        next(pytest_plugin._bootstrap_servers())
    no_kafka_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:5")
    assert next(pytest_plugin._bootstrap_servers()) == "127.0.0.1:5"


def test_unknown_aiowriter_kafka_is_an_error(no_kafka_env: pytest.MonkeyPatch) -> None:
    no_kafka_env.setenv("AIOWRITER_KAFKA", "docker")
    with pytest.raises(pytest.fail.Exception, match="not one of env, testcontainers, local"):
        next(pytest_plugin._bootstrap_servers())


def test_a_local_start_failure_skips_with_its_reason(no_kafka_env: pytest.MonkeyPatch) -> None:
    def failing(**_kwargs: object) -> NoReturn:
        raise BrokerStartError("no room at the inn")

    no_kafka_env.setenv("AIOWRITER_KAFKA", "local")
    no_kafka_env.setattr(pytest_plugin, "start_local_kafka", failing)
    with pytest.raises(pytest.skip.Exception, match="no room at the inn"):
        next(pytest_plugin._bootstrap_servers())
