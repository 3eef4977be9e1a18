"""The simulated car of ``aiowriter demo``: parameters, their rates and streams, laps and events.

Deterministic (no randomness), so two runs publish the same values; time is simulated, so the
demo produces ``seconds`` of telemetry as fast as the broker takes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import attrs

from .. import open_data, packets
from .._encoding.encoded import EncodedPacket

__all__ = ["CAR_STREAMS", "GROUPS", "Car", "ParameterGroup", "ParameterSpec"]

NS = 1_000_000_000


@attrs.frozen
class ParameterSpec:
    identifier: str
    units: str
    description: str
    min_value: float
    max_value: float


@attrs.frozen
class ParameterGroup:
    """Parameters sampled together at ``rate_hz``, sent as one ``PeriodicData`` packet per
    ``packet_s`` seconds into ``stream``."""

    stream: str
    rate_hz: int
    packet_s: float
    parameters: tuple[ParameterSpec, ...]

    @property
    def samples_per_packet(self) -> int:
        return round(self.rate_hz * self.packet_s)

    @property
    def identifiers(self) -> list[str]:
        return [p.identifier for p in self.parameters]


def _p(identifier: str, units: str, description: str, lo: float, hi: float) -> ParameterSpec:
    return ParameterSpec(identifier, units, description, lo, hi)


GROUPS: tuple[ParameterGroup, ...] = (
    ParameterGroup(
        "Chassis",
        100,
        0.1,
        (
            _p("vCar:Chassis", "km/h", "Car speed", 0, 400),
            _p("gLat:Chassis", "g", "Lateral acceleration", -6, 6),
            _p("gLong:Chassis", "g", "Longitudinal acceleration", -6, 6),
            _p("rThrottle:Chassis", "%", "Throttle pedal", 0, 100),
        ),
    ),
    ParameterGroup(
        "Engine",
        1000,
        0.1,
        (
            _p("nEngine:Engine", "rpm", "Engine speed", 0, 15000),
            _p("pOil:Engine", "bar", "Oil pressure", 0, 10),
        ),
    ),
    ParameterGroup(
        "Engine",
        10,
        1.0,
        (
            _p("TOil:Engine", "degC", "Oil temperature", 0, 200),
            _p("TWater:Engine", "degC", "Water temperature", 0, 200),
        ),
    ),
    ParameterGroup(
        "Tyres",
        50,
        0.2,
        tuple(
            _p(f"TTyre{c}:Tyres", "degC", f"Tyre surface temperature {c}", 0, 200)
            for c in ("FL", "FR", "RL", "RR")
        ),
    ),
)

#: Named streams the car writes, in order (the main stream ``""`` carries laps and events).
CAR_STREAMS: tuple[str, ...] = tuple(dict.fromkeys(g.stream for g in GROUPS))
EVENTS: tuple[str, ...] = ("GearShift", "DRS")


class Car:
    """Signals of a car lapping a track of ``lap_s`` seconds, as functions of time."""

    def __init__(self, lap_s: float) -> None:
        self.lap_s = lap_s

    def _phase(self, t: float) -> float:
        return (t % self.lap_s) / self.lap_s

    def speed(self, t: float) -> float:
        ph = 2 * math.pi * self._phase(t)
        return 180 + 90 * math.sin(ph) + 40 * math.sin(3 * ph + 0.5)

    def gear(self, t: float) -> int:
        return max(1, min(8, 1 + int(self.speed(t) // 40)))

    def signal(self, identifier: str, t: float) -> float:
        v = self.speed(t)
        ph = 2 * math.pi * self._phase(t)
        if identifier == "vCar:Chassis":
            return v
        if identifier == "gLat:Chassis":
            return 3.5 * math.sin(4 * ph) * v / 250
        if identifier == "gLong:Chassis":
            dv = (90 * math.cos(ph) + 120 * math.cos(3 * ph + 0.5)) * 2 * math.pi / self.lap_s
            return dv / 3.6 / 9.81
        if identifier == "rThrottle:Chassis":
            return max(0.0, min(100.0, 60 + 60 * math.cos(3 * ph + 0.5)))
        if identifier == "nEngine:Engine":
            return 4500 + (v % 40) / 40 * 7500 + 25 * math.sin(2 * math.pi * 180 * t)
        if identifier == "pOil:Engine":
            return 3.0 + self.signal("nEngine:Engine", t) / 4000
        if identifier == "TOil:Engine":
            return 60 + 50 * (1 - math.exp(-t / 60))
        if identifier == "TWater:Engine":
            return 55 + 40 * (1 - math.exp(-t / 80))
        if identifier.startswith("TTyre"):
            corner = ("FL", "FR", "RL", "RR").index(identifier[5:7])
            return 70 + 30 * (1 - math.exp(-t / 40)) + 4 * math.sin(ph + corner)
        raise KeyError(identifier)

    def periodic(
        self, group: ParameterGroup, data_format: int, start_ns: int, t0: float
    ) -> tuple[EncodedPacket, int]:
        """The group's packet starting ``t0`` s into the session; returns (packet, samples)."""
        n = group.samples_per_packet
        dt = 1 / group.rate_hz
        columns = [[self.signal(p, t0 + i * dt) for i in range(n)] for p in group.identifiers]
        packet = packets.periodic_data(
            data_format, start_ns + round(t0 * NS), NS // group.rate_hz, columns
        )
        return packet, n * len(columns)

    def events(self, t_from: float, t_to: float) -> Iterator[tuple[str, float, list[float]]]:
        """``(event, time, raw values)`` between two times, checked at 100 Hz."""
        step = 0.01
        t = t_from
        while t < t_to:
            before, after = self.gear(t), self.gear(t + step)
            if before != after:
                yield "GearShift", t + step, [float(before), float(after)]
            v0, v1 = self.speed(t), self.speed(t + step)
            if (v0 < 250) != (v1 < 250):
                yield "DRS", t + step, [1.0 if v1 >= 250 else 0.0]
            t += step


def configuration(groups: Sequence[ParameterGroup]) -> EncodedPacket:
    """The Configuration packet: every parameter with units, limits and frequency, the events."""
    params = [
        packets.parameter_definition(
            spec.identifier,
            name=spec.identifier.split(":")[0],
            application_name=spec.identifier.split(":")[1],
            description=spec.description,
            units=spec.units,
            min_value=spec.min_value,
            max_value=spec.max_value,
            frequencies=[float(g.rate_hz)],
            groups=[g.stream],
        )
        for g in groups
        for spec in g.parameters
    ]
    events = [
        packets.event_definition(
            "GearShift",
            name="Gear shift",
            description="Gear changed (from, to)",
            priority=open_data.EventPriority.LOW,
            data_types=[open_data.DataType.UINT8, open_data.DataType.UINT8],
            units=["", ""],
        ),
        packets.event_definition(
            "DRS",
            name="DRS",
            description="Drag reduction system opened (1) or closed (0)",
            priority=open_data.EventPriority.MEDIUM,
            data_types=[open_data.DataType.UINT8],
            units=[""],
        ),
    ]
    return packets.configuration(params, events, config_id="aiowriter-demo-car")
