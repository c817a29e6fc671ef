"""The example tools of the plan language spec: a ship's hull and air checks.

`scan_hull`, `check_oxygen` and `analyze_atmosphere` are the tools the spec's
example plan `hull-check-7` calls. They are deterministic: optional arguments
steer what they report (which sections are breached, the oxygen level), so
tests and example plans can drive every branch of a plan (`run_if`,
`intervention_if`) on purpose. Their outputs are typed dataclasses, so that
references such as `$s2.level` and `$s1.sections.0.integrity_percent` have
real fields to walk.

All three are importable by module path, so a notebook compiled from a plan
that uses them runs on its own (`python notebook.py`, `marimo edit`).
"""

from __future__ import annotations

import dataclasses
import zlib

import anyio

from marimo_engine.tools.registry import ToolRegistry

__all__ = [
    "AtmosphereAnalysis",
    "HullScan",
    "OxygenReading",
    "SectionReading",
    "analyze_atmosphere",
    "check_oxygen",
    "example_registry",
    "scan_hull",
]

DEFAULT_SECTIONS = ("bow", "midship", "stern", "engine_room")
"""The hull sections `scan_hull` scans when none are given."""

O2_LOW_PERCENT = 19.5
"""Below this oxygen level (percent by volume) air is oxygen-deficient (OSHA 29 CFR 1910.146)."""
O2_CRITICAL_PERCENT = 16.0
"""Below this level people are impaired within minutes; evacuate."""
O2_HIGH_PERCENT = 23.5
"""Above this level air is oxygen-enriched: a fire hazard (OSHA 29 CFR 1910.146)."""
SEA_LEVEL_KPA = 101.325
"""Standard atmospheric pressure, kilopascals."""


@dataclasses.dataclass(frozen=True)
class SectionReading:
    """One hull section's reading.

    Attributes:
        section: The section's name, such as `"stern"`.
        integrity_percent: Structural integrity, 0–100 percent.
        breach: Whether the section is breached.
        pressure_kpa: Cabin pressure behind the section, kilopascals.
    """

    section: str
    integrity_percent: float
    breach: bool
    pressure_kpa: float


@dataclasses.dataclass(frozen=True)
class HullScan:
    """The result of `scan_hull`.

    Attributes:
        breach_detected: Whether any section is breached.
        integrity_percent: The lowest section integrity, 0–100 percent.
        breached_sections: Names of breached sections, in scan order.
        sections: Every section's reading, in scan order.
    """

    breach_detected: bool
    integrity_percent: float
    breached_sections: list[str]
    sections: list[SectionReading]


@dataclasses.dataclass(frozen=True)
class OxygenReading:
    """The result of `check_oxygen`.

    Attributes:
        level: Oxygen, percent by volume (20.9 in normal air).
        pressure_kpa: Oxygen partial pressure, kilopascals.
        sensor_id: The sensor that was read.
        status: `"critical"`, `"low"`, `"nominal"` or `"high"` (see the
            module's `O2_*` thresholds).
    """

    level: float
    pressure_kpa: float
    sensor_id: str
    status: str


@dataclasses.dataclass(frozen=True)
class AtmosphereAnalysis:
    """The result of `analyze_atmosphere`.

    Attributes:
        o2_level: The oxygen level analysed, percent by volume.
        composition: Gas to percent by volume (`"N2"`, `"O2"`, `"Ar"`,
            `"CO2"`); sums to 100.
        status: `"critical"`, `"low"`, `"nominal"` or `"high"`.
        recommendations: What the crew should do, most urgent first; empty
            when nothing is needed.
        note: The context passed in, or `None`.
    """

    o2_level: float
    composition: dict[str, float]
    status: str
    recommendations: list[str]
    note: str | None = None


def _o2_status(level: float) -> str:
    if level < O2_CRITICAL_PERCENT:
        return "critical"
    if level < O2_LOW_PERCENT:
        return "low"
    if level > O2_HIGH_PERCENT:
        return "high"
    return "nominal"


def scan_hull(
    sections: list[str] | None = None, breach_sections: list[str] | None = None
) -> HullScan:
    """Scan the ship's hull section by section for breaches and structural integrity.

    Args:
        sections: Hull sections to scan, in order; defaults to bow, midship,
            stern and engine_room.
        breach_sections: Sections to report as breached (simulation input);
            each must be one of `sections`. Defaults to none.

    Returns:
        A `HullScan`: `breach_detected`, `integrity_percent` (the lowest
        section's), `breached_sections` and per-section `sections` readings.

    Raises:
        ValueError: `sections` is empty, or a breached section is not scanned.
    """
    names = list(DEFAULT_SECTIONS if sections is None else sections)
    if not names:
        raise ValueError("sections is empty; name at least one hull section or leave it out.")
    breached = list(breach_sections or [])
    missing = [s for s in breached if s not in names]
    if missing:
        raise ValueError(
            f"breach_sections {missing!r} are not among the scanned sections {names!r}; "
            "add them to sections."
        )
    readings = []
    for name in names:
        # A stable per-section value in [0, 1): the same section always reads the same.
        jitter = (zlib.crc32(name.encode()) % 1000) / 1000
        is_breach = name in breached
        integrity = round(38.0 + 14.0 * jitter, 1) if is_breach else round(96.0 + 4.0 * jitter, 1)
        pressure = round(61.0 + 9.0 * jitter, 1) if is_breach else SEA_LEVEL_KPA
        readings.append(SectionReading(name, min(integrity, 100.0), is_breach, pressure))
    return HullScan(
        breach_detected=bool(breached),
        integrity_percent=min(r.integrity_percent for r in readings),
        breached_sections=[r.section for r in readings if r.breach],
        sections=readings,
    )


async def check_oxygen(
    simulated_level: float | None = None,
    sensor_id: str = "O2-BRIDGE-1",
    read_delay_s: float = 0.05,
) -> OxygenReading:
    """Read the cabin oxygen sensor.

    Args:
        simulated_level: Oxygen level the sensor reports, percent by volume
            (simulation input); defaults to 20.9, normal air.
        sensor_id: Which sensor to read.
        read_delay_s: Seconds the sensor takes to answer (simulated, awaited
            without blocking other steps).

    Returns:
        An `OxygenReading`: `level` (percent), `pressure_kpa` (oxygen partial
        pressure), `sensor_id` and `status`.

    Raises:
        ValueError: The level is outside 0–100 percent or the delay is negative.
    """
    level = 20.9 if simulated_level is None else float(simulated_level)
    if not 0.0 <= level <= 100.0:
        raise ValueError(f"simulated_level {level!r} is not a percentage; use 0-100.")
    if read_delay_s < 0:
        raise ValueError(f"read_delay_s {read_delay_s!r} is negative; use 0 or more seconds.")
    await anyio.sleep(read_delay_s)
    return OxygenReading(
        level=round(level, 2),
        pressure_kpa=round(SEA_LEVEL_KPA * level / 100.0, 2),
        sensor_id=sensor_id,
        status=_o2_status(level),
    )


def analyze_atmosphere(
    o2_level: float, co2_ppm: float = 800.0, context: str | None = None
) -> AtmosphereAnalysis:
    """Analyse the cabin atmosphere from its oxygen level and recommend actions.

    Args:
        o2_level: Oxygen, percent by volume, usually from `check_oxygen`
            (`"$step.level"`).
        co2_ppm: Carbon dioxide, parts per million.
        context: Free text kept on the result, such as what led to the analysis.

    Returns:
        An `AtmosphereAnalysis`: `composition` (percent by volume per gas),
        `status` and `recommendations`.

    Raises:
        ValueError: `o2_level` is outside 0–100 or `co2_ppm` is negative.
    """
    if not 0.0 <= o2_level <= 100.0:
        raise ValueError(f"o2_level {o2_level!r} is not a percentage; use 0-100.")
    if co2_ppm < 0:
        raise ValueError(f"co2_ppm {co2_ppm!r} is negative; use 0 or more.")
    co2 = co2_ppm / 10_000
    argon = 0.93
    nitrogen = max(0.0, 100.0 - o2_level - co2 - argon)
    composition = {
        "N2": round(nitrogen, 3),
        "O2": round(o2_level, 3),
        "Ar": argon,
        "CO2": round(co2, 3),
    }
    status = _o2_status(o2_level)
    recommendations: list[str] = []
    if status == "critical":
        recommendations += [
            "Evacuate the affected compartments and don breathing apparatus.",
            "Seal breached sections and start emergency oxygen supply.",
        ]
    elif status == "low":
        recommendations += [
            "Increase oxygen supply and ventilation.",
            "Limit exertion and re-check oxygen in 10 minutes.",
        ]
    elif status == "high":
        recommendations.append("Reduce oxygen supply: enriched air is a fire hazard.")
    if co2_ppm > 5_000:
        recommendations.append("Run CO2 scrubbers: CO2 is above the 5,000 ppm exposure limit.")
    return AtmosphereAnalysis(
        o2_level=o2_level,
        composition=composition,
        status=status,
        recommendations=recommendations,
        note=context,
    )


def example_registry() -> ToolRegistry:
    """Return a new registry with `scan_hull`, `check_oxygen` and `analyze_atmosphere`."""
    return ToolRegistry.from_mapping(
        {
            "scan_hull": scan_hull,
            "check_oxygen": check_oxygen,
            "analyze_atmosphere": analyze_atmosphere,
        }
    )
