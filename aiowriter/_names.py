"""Which data source and stream names the Stream API layout can carry.

Names become Kafka topic names (``ds``, ``ds_essential``, ``ds.stream``), so they must use Kafka's
topic alphabet. The server adds rules of its own: it finds streams with the unescaped regex
``^ds\\.[^.]*$``, finds data sources by stripping ``_essential``, and writes ``topic:partition``
offset keys, so dots in data sources or streams, a ``_essential`` ending and ``:`` would all be
misread.
"""

from __future__ import annotations

import re

from ._exceptions import InvalidNameError

__all__ = [
    "ESSENTIAL_SUFFIX",
    "RESERVED_TOPICS",
    "SESSION_INFO_TOPIC",
    "validate_data_source",
    "validate_session_key",
    "validate_stream",
]

ESSENTIAL_SUFFIX = "_essential"
SESSION_INFO_TOPIC = "SessionInfo"
SYSTEM_STATUS_TOPIC = "SystemStatus"
DEAD_LETTER_TOPIC = "dead-Letter"
RESERVED_TOPICS = frozenset({SESSION_INFO_TOPIC, SYSTEM_STATUS_TOPIC, DEAD_LETTER_TOPIC})

# Kafka's legal topic characters, minus '.', which the layout reserves as the stream separator.
_PART = re.compile(r"[A-Za-z0-9_-]+")
_MAX_TOPIC = 249  # Kafka's limit on a topic name


def validate_data_source(name: object) -> str:
    """Return ``name`` if it can be a data source, else raise :class:`InvalidNameError`."""
    if not isinstance(name, str):
        raise InvalidNameError(f"data source must be a str, got {type(name).__name__}")
    if not name:
        raise InvalidNameError("data source must not be empty")
    if not _PART.fullmatch(name):
        bad = sorted({c for c in name if not _PART.fullmatch(c)})
        raise InvalidNameError(
            f"data source {name!r} contains {''.join(bad)!r}: use only letters, digits, '_' and "
            "'-' (it becomes a Kafka topic name, and '.' separates streams in the layout)"
        )
    if name.endswith(ESSENTIAL_SUFFIX):
        raise InvalidNameError(
            f"data source {name!r} ends with {ESSENTIAL_SUFFIX!r}: the server would read its topic "
            "as the essentials topic of another data source"
        )
    if name in RESERVED_TOPICS or name.startswith("__"):
        raise InvalidNameError(
            f"data source {name!r} is a reserved topic name ({', '.join(sorted(RESERVED_TOPICS))}, "
            "'__*')"
        )
    if len(name) + len(ESSENTIAL_SUFFIX) > _MAX_TOPIC:
        raise InvalidNameError(
            f"data source {name[:20]!r}... is {len(name)} characters; at most "
            f"{_MAX_TOPIC - len(ESSENTIAL_SUFFIX)} fit in a Kafka topic name with "
            f"{ESSENTIAL_SUFFIX!r}"
        )
    return name


def validate_stream(name: object, data_source: str = "") -> str:
    """Return ``name`` if it can be a stream (``""`` is the main stream), else raise."""
    if not isinstance(name, str):
        raise InvalidNameError(f"stream must be a str, got {type(name).__name__}")
    if name == "":
        return name
    if not _PART.fullmatch(name):
        bad = sorted({c for c in name if not _PART.fullmatch(c)})
        raise InvalidNameError(
            f"stream {name!r} contains {''.join(bad)!r}: use only letters, digits, '_' and '-' "
            "(stream topics are '<data source>.<stream>' and the server splits on '.')"
        )
    if name == ESSENTIAL_SUFFIX[1:]:
        # Kafka treats '.' and '_' in topic names as the same character (they collide in its
        # metric names) and refuses '<ds>.essential' once '<ds>_essential' exists, which it
        # always does: refuse the name here rather than at the first write.
        raise InvalidNameError(
            f"stream {name!r}: its topic '<data source>.{name}' collides with the essentials "
            f"topic '<data source>{ESSENTIAL_SUFFIX}' (Kafka treats '.' and '_' alike in topic "
            "names); choose another stream name"
        )
    if len(data_source) + 1 + len(name) > _MAX_TOPIC:
        raise InvalidNameError(
            f"stream {name[:20]!r}...: '{data_source}.<stream>' would exceed Kafka's "
            f"{_MAX_TOPIC}-character topic limit"
        )
    return name


def validate_session_key(key: object, *, allow_empty: bool = True) -> str:
    """Return the session key if usable as a Kafka record key, else raise."""
    if not isinstance(key, str):
        raise InvalidNameError(f"session_key must be a str, got {type(key).__name__}")
    if not key and not allow_empty:
        raise InvalidNameError(
            "session_key must not be empty here: the Stream API drops SessionInfo records "
            "without a key"
        )
    return key
