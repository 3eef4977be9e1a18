"""The Stream API layout in code: names, routes, topic requirements, the partitioner (no broker)."""

from __future__ import annotations

import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiowriter import (
    InvalidInputError,
    InvalidNameError,
    StreamCreationStrategy,
    StreamingConfig,
)
from aiowriter._layout import (
    Layout,
    Route,
    TopicRequirement,
    consistent_random_partition,
    essential_topic,
    offset_key,
)
from aiowriter._names import (
    RESERVED_TOPICS,
    validate_data_source,
    validate_session_key,
    validate_stream,
)

BOOT = "127.0.0.1:9092"
PB = StreamCreationStrategy.PARTITION_BASED
TB = StreamCreationStrategy.TOPIC_BASED


def _layout(strategy: StreamCreationStrategy, mappings: dict[str, int] | None = None) -> Layout:
    return Layout(
        StreamingConfig(
            bootstrap_servers=BOOT,
            stream_creation_strategy=strategy,
            partition_mappings=mappings or {},
        )
    )


# -- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["car1", "Car-1", "a_b", "x" * 239, "_essentialx", "essential"])
def test_data_source_accepted(name: str) -> None:
    assert validate_data_source(name) == name


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "must not be empty"),
        ("car.1", "'.'"),
        ("car:1", "':'"),
        ("car 1", "' '"),
        ("car*", "'*'"),
        ("car+", "'+'"),
        ("ca[r]", "'[]'"),
        ("car$", "'$'"),
        ("(car)", "'()'"),
        ("car/1", "'/'"),
        ("carä", "'ä'"),
        ("car_essential", "_essential"),
        ("SessionInfo", "reserved"),
        ("SystemStatus", "reserved"),
        ("dead-Letter", "reserved"),
        ("__consumer_offsets", "reserved"),
        ("x" * 240, "characters"),
    ],
)
def test_data_source_rejected(name: str, fragment: str) -> None:
    with pytest.raises(InvalidNameError, match=re.escape(fragment)):
        validate_data_source(name)


@pytest.mark.parametrize("name", [None, 1, b"car"])
def test_data_source_wrong_type(name: object) -> None:
    with pytest.raises(InvalidNameError, match="must be a str"):
        validate_data_source(name)


def test_invalid_name_is_invalid_input_and_value_error() -> None:
    with pytest.raises(InvalidInputError):
        validate_data_source("a.b")
    with pytest.raises(ValueError, match=r"a\.b"):
        validate_data_source("a.b")


@pytest.mark.parametrize("name", ["", "chassis", "Stream-1", "a_essential", "SessionInfo"])
def test_stream_accepted(name: str) -> None:
    # A stream called SessionInfo or ending in _essential is harmless: its topic is 'ds.<name>'.
    assert validate_stream(name, "car") == name


@pytest.mark.parametrize("name", ["a.b", ".", "a:b", "a b", "a*", "a?", "a|b", "^a", "a\\b"])
def test_stream_rejected(name: str) -> None:
    with pytest.raises(InvalidNameError, match="stream"):
        validate_stream(name, "car")


def test_stream_essential_collides_with_the_essentials_topic() -> None:
    # Kafka refuses 'car.essential' once 'car_essential' exists ("collides with existing topic"):
    # the name is refused before anything is queued, not at the first write.
    with pytest.raises(InvalidNameError, match="collides with the essentials topic"):
        validate_stream("essential", "car")
    assert validate_stream("Essential", "car") == "Essential"  # topic names are case-sensitive


def test_stream_topic_length() -> None:
    ds = "d" * 200
    assert validate_stream("s" * 48, ds)  # 200 + 1 + 48 == 249
    with pytest.raises(InvalidNameError, match="249"):
        validate_stream("s" * 49, ds)


@pytest.mark.parametrize("name", [None, 0, b"s"])
def test_stream_wrong_type(name: object) -> None:
    with pytest.raises(InvalidNameError, match="must be a str"):
        validate_stream(name)


def test_session_key() -> None:
    assert validate_session_key("k") == "k"
    assert validate_session_key("") == ""
    with pytest.raises(InvalidNameError, match="must not be empty"):
        validate_session_key("", allow_empty=False)
    for bad in (None, 1, b"k"):
        with pytest.raises(InvalidNameError, match="session_key must be a str"):
            validate_session_key(bad)


def test_reserved_topics() -> None:
    assert {"SessionInfo", "SystemStatus", "dead-Letter"} == RESERVED_TOPICS


@given(st.text(min_size=1, max_size=30))
def test_accepted_data_sources_are_layout_safe(name: str) -> None:
    """Whatever is accepted is a legal topic and is matched by the server's unescaped regex as
    if it were escaped (no metacharacters), and its essentials topic maps back to it."""
    try:
        validate_data_source(name)
    except InvalidNameError:
        return
    assert re.fullmatch(r"[A-Za-z0-9_-]+", name)
    # Used unescaped in '^ds\\.[^.]*$', the name still matches only itself.
    stream_re = re.compile(f"^{name}\\.[^.]*$")
    assert stream_re.match(f"{name}.s")
    assert not stream_re.match(f"{name}x.s")
    assert not stream_re.match(f"x{name}.s")
    assert not name.endswith("_essential")
    assert essential_topic(name).removesuffix("_essential") == name


# -- routing: TopicBased ---------------------------------------------------------------------------


def test_topic_based_routes() -> None:
    layout = _layout(TB)
    assert layout.topic_based
    assert layout.data_route("ds", "") == Route("ds", 0)
    assert layout.data_route("ds", "s") == Route("ds.s", 0)
    assert layout.essential_route("ds") == Route("ds_essential", 0)
    assert layout.info_route() == Route("SessionInfo", None)


def test_topic_based_requirements() -> None:
    layout = _layout(TB)
    assert layout.topic_requirements("ds", "") == [
        TopicRequirement("ds", 1),
        TopicRequirement("ds_essential", 1),
    ]
    assert layout.topic_requirements("ds", "s") == [
        TopicRequirement("ds", 1),
        TopicRequirement("ds_essential", 1),
        TopicRequirement("ds.s", 1, exact=True),
    ]


def test_topic_based_offset_keys() -> None:
    layout = _layout(TB)
    assert layout.offset_keys("ds", ["ds.b", "ds.a", "ds.a"]) == [
        ("ds", 0),
        ("ds_essential", 0),
        ("ds.a", 0),
        ("ds.b", 0),
    ]


# -- routing: PartitionBased -----------------------------------------------------------------------


def test_partition_based_routes_with_mappings() -> None:
    layout = _layout(PB, {"s1": 1, "s5": 5})
    assert not layout.topic_based
    assert layout.partition_mappings == {"s1": 1, "s5": 5}
    assert layout.data_route("ds", "") == Route("ds", 0)
    assert layout.data_route("ds", "s1") == Route("ds", 1)
    assert layout.data_route("ds", "s5") == Route("ds", 5)
    assert layout.data_route("ds", "unmapped") == Route("ds", 0)
    # PartitionBased leaves the essentials partition to the partitioner.
    assert layout.essential_route("ds") == Route("ds_essential", None)


def test_partition_based_routes_without_mappings() -> None:
    layout = _layout(PB)
    for stream in ("", "a", "b"):
        assert layout.data_route("ds", stream) == Route("ds", 0)


@pytest.mark.parametrize(
    ("mappings", "main_partitions"), [({}, 1), ({"a": 1}, 2), ({"a": 3, "b": 1}, 4)]
)
def test_partition_based_requirements(mappings: dict[str, int], main_partitions: int) -> None:
    layout = _layout(PB, mappings)
    for stream in ("", "a", "zz"):
        # No stream topic: streams are partitions of 'ds', which needs max(P)+1 partitions.
        assert layout.topic_requirements("ds", stream) == [
            TopicRequirement("ds", main_partitions),
            TopicRequirement("ds_essential", 1),
        ]


def test_partition_based_offset_keys() -> None:
    layout = _layout(PB, {"b": 2, "a": 1})
    assert layout.offset_keys("ds", ["ds.ignored"]) == [
        ("ds", 0),
        ("ds_essential", 0),
        ("ds", 1),
        ("ds", 2),
    ]


def test_offset_key_and_essential_topic() -> None:
    assert offset_key("ds.s", 3) == "ds.s:3"
    assert essential_topic("car") == "car_essential"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("ds.s", True),
        ("ds.", True),  # the server's regex matches an empty stream name too
        ("DS.s", True),  # and it is case-insensitive (StreamsProvider)
        ("ds.s.t", False),
        ("ds", False),
        ("dsx.s", False),
        ("ds_essential", False),
        ("xds.s", False),
    ],
)
def test_is_stream_topic(topic: str, expected: bool) -> None:
    assert Layout.is_stream_topic("ds", topic) is expected
    # Same answer as the server's regex for a layout-safe data source name.
    assert bool(re.fullmatch(r"ds\.[^.]*", topic, flags=re.IGNORECASE)) is expected


# -- the partitioner -------------------------------------------------------------------------------


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=1, max_value=1000))
def test_consistent_random_is_crc32(key: bytes, count: int) -> None:
    assert consistent_random_partition(key, count) == zlib.crc32(key) % count


def test_consistent_random_known_values() -> None:
    # librdkafka's consistent_random for a key is rd_crc32(key) % partition_cnt.
    assert consistent_random_partition(b"session-1", 7) == zlib.crc32(b"session-1") % 7
    assert consistent_random_partition(b"abc", 3) == 0x352441C2 % 3


@pytest.mark.parametrize("count", [0, 1])
def test_single_partition_is_zero(count: int) -> None:
    assert consistent_random_partition(b"anything", count) == 0
    assert consistent_random_partition(b"", count) == 0


def test_empty_key_is_random_in_range() -> None:
    seen = {consistent_random_partition(b"", 4) for _ in range(400)}
    assert seen <= {0, 1, 2, 3}
    assert len(seen) > 1
