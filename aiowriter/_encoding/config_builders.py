"""Builders for ``Configuration`` packets and the parameter, event and group definitions in them.

The definition helpers validate their arguments and return the betterproto2 objects of
:mod:`aiowriter.open_data` (so a configuration can also be assembled from objects built by hand);
:func:`configuration` encodes them with the canonical object encoder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from .._exceptions import EncodingError
from .._proto.ma.streaming.open_data.v1 import (
    DataType,
    EventDefinition,
    EventPriority,
    FormulaDefinition,
    FormulaType,
    GroupDefinition,
    ParameterDefinition,
    TextConversionDefinition,
)
from .builders import essential
from .encoded import EncodedPacket, trusted
from .objects import encode_message
from .wire import (
    UINT32_MAX,
    check_float,
    check_int,
    put_bool,
    put_message,
    put_string,
    put_uint,
    utf8,
)

__all__ = [
    "configuration",
    "event_definition",
    "formula_definition",
    "group_definition",
    "parameter_definition",
    "text_conversion_definition",
]

_E = TypeVar("_E")


def _enum(cls: type[_E], value: object, field: str) -> _E:
    members: list[Any] = list(cls)  # type: ignore[call-overload]
    if isinstance(value, int) and not isinstance(value, bool) and value in members:
        return cls(value)  # type: ignore[call-arg]
    names = ", ".join(m.name for m in members)
    raise EncodingError(f"{field} = {value!r} is not a {cls.__name__} ({names})")


def _text(value: object, field: str) -> str:
    utf8(value, field)
    assert isinstance(value, str)
    return value


def _texts(values: object, field: str) -> list[str]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise EncodingError(f"{field} must be a sequence of str")
    return [_text(v, f"{field}[{i}]") for i, v in enumerate(values)]


def _floats(values: object, field: str) -> list[float]:
    if hasattr(values, "tolist") and type(values).__module__ == "numpy":
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise EncodingError(f"{field} must be a sequence of float")
    return [check_float(v, f"{field}[{i}]") for i, v in enumerate(values)]


def _identifier(value: object, field: str = "identifier") -> str:
    text = _text(value, field)
    if not text:
        raise EncodingError(f"{field} must not be empty")
    return text


def text_conversion_definition(
    conversion_identifier: str,
    input_values: Sequence[float],
    string_values: Sequence[str],
    default: str = "",
) -> TextConversionDefinition:
    """Return a value-to-text conversion (``input_values[i]`` is shown as ``string_values[i]``)."""
    inputs = _floats(input_values, "input_values")
    strings = _texts(string_values, "string_values")
    if len(inputs) != len(strings):
        raise EncodingError(
            f"{len(inputs)} input_values but {len(strings)} string_values; give one text per value"
        )
    return TextConversionDefinition(
        conversion_identifier=_text(conversion_identifier, "conversion_identifier"),
        input_values=inputs,
        string_values=strings,
        default=_text(default, "default"),
    )


def formula_definition(formula: str, type: int = FormulaType.FDL) -> FormulaDefinition:
    """Return a formula (default type FDL)."""
    return FormulaDefinition(
        type=_enum(FormulaType, type, "type"), formula=_text(formula, "formula")
    )


def parameter_definition(
    identifier: str,
    *,
    name: str = "",
    application_name: str = "",
    description: str = "",
    groups: Sequence[str] = (),
    units: str = "",
    data_type: int = DataType.FLOAT64,
    format_string: str = "",
    min_value: float = 0.0,
    max_value: float = 0.0,
    warning_min_value: float = 0.0,
    warning_max_value: float = 0.0,
    frequencies: Sequence[float] = (),
    includes_row_data: bool = False,
    includes_synchro_data: bool = False,
    conversion: TextConversionDefinition | None = None,
    formula: FormulaDefinition | None = None,
) -> ParameterDefinition:
    """Return a parameter definition for :func:`configuration`.

    ``identifier`` is required (e.g. ``"vCar:Chassis"``); ``data_type`` defaults to FLOAT64;
    ``frequencies`` are in Hz; ``min_value``/``max_value`` and the warning limits are in the
    parameter's ``units``.
    """
    if min_value > max_value:
        raise EncodingError(f"min_value {min_value} is greater than max_value {max_value}")
    for field, value in (("conversion", conversion), ("formula", formula)):
        expected = TextConversionDefinition if field == "conversion" else FormulaDefinition
        if value is not None and not isinstance(value, expected):
            raise EncodingError(f"{field} must be an open_data.{expected.__name__} or None")
    return ParameterDefinition(
        identifier=_identifier(identifier),
        name=_text(name, "name"),
        application_name=_text(application_name, "application_name"),
        description=_text(description, "description"),
        groups=_texts(groups, "groups"),
        units=_text(units, "units"),
        data_type=_enum(DataType, data_type, "data_type"),
        format_string=_text(format_string, "format_string"),
        min_value=check_float(min_value, "min_value"),
        max_value=check_float(max_value, "max_value"),
        warning_min_value=check_float(warning_min_value, "warning_min_value"),
        warning_max_value=check_float(warning_max_value, "warning_max_value"),
        frequencies=_floats(frequencies, "frequencies"),
        includes_row_data=bool(includes_row_data),
        includes_synchro_data=bool(includes_synchro_data),
        conversion=conversion,
        formula=formula,
    )


def event_definition(
    identifier: str,
    *,
    name: str = "",
    definition_id: int = 0,
    application_name: str = "",
    description: str = "",
    priority: int = EventPriority.UNSPECIFIED,
    groups: Sequence[str] = (),
    data_types: Sequence[int] = (),
    format_strings: Sequence[str] = (),
    conversions: Sequence[TextConversionDefinition] = (),
    units: Sequence[str] = (),
) -> EventDefinition:
    """Return an event definition for :func:`configuration`.

    ``data_types``, ``format_strings``, ``conversions`` and ``units`` describe the event's raw
    values, one entry per value; ``definition_id`` is a uint32.
    """
    types = [_enum(DataType, t, f"data_types[{i}]") for i, t in enumerate(data_types)]
    for i, c in enumerate(conversions):
        if not isinstance(c, TextConversionDefinition):
            raise EncodingError(f"conversions[{i}] must be an open_data.TextConversionDefinition")
    return EventDefinition(
        identifier=_identifier(identifier),
        name=_text(name, "name"),
        definition_id=check_int(definition_id, "definition_id", 0, UINT32_MAX, "uint32"),
        application_name=_text(application_name, "application_name"),
        description=_text(description, "description"),
        priority=_enum(EventPriority, priority, "priority"),
        groups=_texts(groups, "groups"),
        data_types=types,
        format_strings=_texts(format_strings, "format_strings"),
        conversions=list(conversions),
        units=_texts(units, "units"),
    )


def group_definition(
    identifier: str,
    *,
    name: str = "",
    application_name: str = "",
    description: str = "",
    groups: Sequence[GroupDefinition] = (),
) -> GroupDefinition:
    """Return a (possibly nested) group definition for :func:`configuration`."""
    for i, g in enumerate(groups):
        if not isinstance(g, GroupDefinition):
            raise EncodingError(f"groups[{i}] must be a group_definition(...) result")
    return GroupDefinition(
        identifier=_identifier(identifier),
        name=_text(name, "name"),
        application_name=_text(application_name, "application_name"),
        description=_text(description, "description"),
        groups=list(groups),
    )


def _definitions(values: object, cls: type, field: str) -> list[Any]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise EncodingError(f"{field} must be a sequence of open_data.{cls.__name__}")
    for i, v in enumerate(values):
        if not isinstance(v, cls):
            raise EncodingError(
                f"{field}[{i}] must be an open_data.{cls.__name__}, got {type(v).__name__}"
            )
    return list(values)


def configuration(
    parameter_definitions: Sequence[ParameterDefinition] = (),
    event_definitions: Sequence[EventDefinition] = (),
    group_definitions: Sequence[GroupDefinition] = (),
    *,
    config_id: str = "",
    partial_packet: bool = False,
    packet_number: int = 0,
    total_packet_number: int = 0,
    is_essential: bool | None = None,
) -> EncodedPacket:
    """Build a ``Configuration`` packet of parameter, event and group definitions.

    Args:
        parameter_definitions: :func:`parameter_definition` results.
        event_definitions: :func:`event_definition` results.
        group_definitions: :func:`group_definition` results.
        config_id: the configuration's identifier.
        partial_packet: True when the configuration is split over several packets; then
            ``packet_number`` (1-based) and ``total_packet_number`` (uint32) say which.
        is_essential: default True.
    """
    if partial_packet and not 1 <= packet_number <= total_packet_number:
        raise EncodingError(
            f"a partial configuration needs 1 <= packet_number <= total_packet_number, got "
            f"packet_number={packet_number}, total_packet_number={total_packet_number}"
        )
    out = bytearray()
    put_string(out, b"\x0a", config_id, "config_id")
    for key, values, cls, field in (
        (b"\x12", parameter_definitions, ParameterDefinition, "parameter_definitions"),
        (b"\x1a", event_definitions, EventDefinition, "event_definitions"),
        (b"\x22", group_definitions, GroupDefinition, "group_definitions"),
    ):
        for d in _definitions(values, cls, field):
            put_message(out, key, encode_message(d))
    put_bool(out, b"\x28", partial_packet, "partial_packet")
    put_uint(out, b"\x30", packet_number, "packet_number", 32)
    put_uint(out, b"\x38", total_packet_number, "total_packet_number", 32)
    return trusted("Configuration", bytes(out), essential("Configuration", is_essential))
