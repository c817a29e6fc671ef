"""The example tools: deterministic, typed outputs, and what the registry derives."""

from __future__ import annotations

import dataclasses
from importlib import resources

import anyio
import pytest

from marimo_engine.errors import UsageError
from marimo_engine.examples import example_names, load_example
from marimo_engine.plans.references import resolve_reference
from marimo_engine.plans.schema import load_plan
from marimo_engine.tools.examples import (
    AtmosphereAnalysis,
    HullScan,
    OxygenReading,
    analyze_atmosphere,
    check_oxygen,
    example_registry,
    scan_hull,
)


def test_scan_hull_defaults_to_four_intact_sections() -> None:
    scan = scan_hull()
    assert isinstance(scan, HullScan)
    assert scan.breach_detected is False
    assert scan.breached_sections == []
    assert [r.section for r in scan.sections] == ["bow", "midship", "stern", "engine_room"]
    assert all(96.0 <= r.integrity_percent <= 100.0 for r in scan.sections)
    assert all(r.pressure_kpa == 101.325 for r in scan.sections)
    assert scan.integrity_percent == min(r.integrity_percent for r in scan.sections)


def test_scan_hull_reports_breaches_deterministically() -> None:
    first = scan_hull(sections=["bow", "stern"], breach_sections=["stern"])
    again = scan_hull(sections=["bow", "stern"], breach_sections=["stern"])
    assert first == again
    assert first.breach_detected is True
    assert first.breached_sections == ["stern"]
    stern = first.sections[1]
    assert stern.breach is True
    assert 38.0 <= stern.integrity_percent <= 52.0
    assert stern.pressure_kpa < 101.325
    assert first.integrity_percent == stern.integrity_percent


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sections": []}, r"sections is empty; name at least one hull section"),
        (
            {"sections": ["bow"], "breach_sections": ["stern"]},
            r"breach_sections \['stern'\] are not among the scanned sections \['bow'\]",
        ),
    ],
    ids=["no-sections", "breach-outside-scan"],
)
def test_scan_hull_rejects_bad_input(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        scan_hull(**kwargs)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_check_oxygen_is_a_coroutine_with_a_steerable_level() -> None:
    normal = await check_oxygen(read_delay_s=0)
    assert normal == OxygenReading(
        level=20.9, pressure_kpa=21.18, sensor_id="O2-BRIDGE-1", status="nominal"
    )
    low = await check_oxygen(simulated_level=14.2, sensor_id="O2-ENGINE-3", read_delay_s=0)
    assert (low.level, low.status, low.sensor_id) == (14.2, "critical", "O2-ENGINE-3")
    assert (await check_oxygen(18.0, read_delay_s=0)).status == "low"
    assert (await check_oxygen(25.0, read_delay_s=0)).status == "high"


@pytest.mark.anyio
async def test_check_oxygen_awaits_its_read_delay_and_can_be_cancelled() -> None:
    with anyio.move_on_after(0.05) as scope:
        await check_oxygen(read_delay_s=30)
    assert scope.cancelled_caught


@pytest.mark.anyio
async def test_check_oxygen_rejects_impossible_levels() -> None:
    with pytest.raises(ValueError, match=r"simulated_level 120.0 is not a percentage; use 0-100"):
        await check_oxygen(simulated_level=120, read_delay_s=0)
    with pytest.raises(ValueError, match=r"read_delay_s -1 is negative"):
        await check_oxygen(read_delay_s=-1)


@pytest.mark.parametrize(
    ("o2_level", "status", "first_recommendation"),
    [
        (20.9, "nominal", None),
        (18.2, "low", "Increase oxygen supply and ventilation."),
        (14.0, "critical", "Evacuate the affected compartments and don breathing apparatus."),
        (24.0, "high", "Reduce oxygen supply: enriched air is a fire hazard."),
    ],
    ids=["nominal", "low", "critical", "high"],
)
def test_analyze_atmosphere_status_and_recommendations(
    o2_level: float, status: str, first_recommendation: str | None
) -> None:
    analysis = analyze_atmosphere(o2_level)
    assert isinstance(analysis, AtmosphereAnalysis)
    assert analysis.status == status
    assert (
        analysis.recommendations[0] if analysis.recommendations else None
    ) == first_recommendation
    assert set(analysis.composition) == {"N2", "O2", "Ar", "CO2"}
    assert sum(analysis.composition.values()) == pytest.approx(100.0, abs=0.01)
    assert analysis.composition["O2"] == o2_level


def test_analyze_atmosphere_flags_co2_and_keeps_context() -> None:
    analysis = analyze_atmosphere(20.9, co2_ppm=6000, context="after the breach")
    assert analysis.recommendations == [
        "Run CO2 scrubbers: CO2 is above the 5,000 ppm exposure limit."
    ]
    assert analysis.note == "after the breach"
    with pytest.raises(ValueError, match=r"o2_level -1 is not a percentage"):
        analyze_atmosphere(-1)


def test_outputs_are_walkable_by_references() -> None:
    outputs = {"s1": scan_hull(breach_sections=["stern"]), "s3": analyze_atmosphere(14.0)}
    assert resolve_reference("$s1.breach_detected", outputs) is True
    assert resolve_reference("$s1.sections.2.section", outputs) == "stern"
    assert resolve_reference("$s3.composition.O2", outputs) == 14.0
    assert dataclasses.is_dataclass(outputs["s1"])


def test_example_registry_derives_schemas_and_import_paths() -> None:
    registry = example_registry()
    assert list(registry) == ["scan_hull", "check_oxygen", "analyze_atmosphere"]
    assert [registry.get(name).is_async for name in registry] == [False, True, False]
    for name in registry:
        assert registry.get(name).import_path == ("marimo_engine.tools.examples", name)
    schema = registry.get("analyze_atmosphere").schema()
    assert schema["description"] == (
        "Analyse the cabin atmosphere from its oxygen level and recommend actions."
    )
    assert schema["parameters"]["required"] == ["o2_level"]
    assert schema["parameters"]["properties"]["o2_level"]["type"] == "number"
    oxygen = registry.get("check_oxygen").parameters_schema["properties"]
    assert oxygen["simulated_level"]["default"] is None
    assert "percent by volume" in oxygen["simulated_level"]["description"]
    returns = registry.get("check_oxygen").returns_schema
    assert returns is not None
    assert set(returns["required"]) == {"level", "pressure_kpa", "sensor_id", "status"}


def test_example_registry_is_a_new_registry_each_time() -> None:
    assert example_registry() is not example_registry()


# --- the example plans shipped in marimo_engine.examples ----------------------


def test_example_names_list_every_json_plan_of_the_package() -> None:
    names = example_names()
    assert names == sorted(names)
    assert {"hull-check-7", "breach-response", "oxygen-watch"} <= set(names)
    folder = resources.files("marimo_engine.examples")
    assert set(names) == {
        entry.name.removesuffix(".json")
        for entry in folder.iterdir()
        if entry.name.endswith(".json")
    }


@pytest.mark.parametrize("name", example_names())
def test_every_example_plan_parses_and_is_a_fresh_dict(name: str) -> None:
    data = load_example(name)
    plan = load_plan(data)
    assert plan.steps
    data["steps"].clear()
    assert load_example(name)["steps"], "load_example must not share its dict"
    assert load_example(f"{name}.json") == load_example(name)


def test_example_plans_use_the_features_of_the_spec() -> None:
    steps = [
        step for name in ("breach-response", "oxygen-watch") for step in load_example(name)["steps"]
    ]
    used = {key for step in steps for key in step}
    assert {
        "depends_on",
        "key_finding",
        "retries",
        "timeout_s",
        "run_if",
        "intervention_if",
    } <= used
    texts = [v for step in steps for v in step.get("args", {}).values() if isinstance(v, str)]
    assert any("$" in t and not t.startswith("$") for t in texts), "an interpolated string"
    assert any("$$" in t for t in texts), "an escaped dollar"


def test_unknown_example_names_close_ones_or_all() -> None:
    with pytest.raises(
        UsageError, match=r"^There is no example plan 'hull-check'\. Did you mean 'hull-check-7'\?$"
    ):
        load_example("hull-check")
    with pytest.raises(
        UsageError,
        match=r"^There is no example plan 'zzz'\. Examples: 'air-report', 'breach-response', ",
    ):
        load_example("zzz")
