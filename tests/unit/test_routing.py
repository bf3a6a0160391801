"""The route table: per zone a mode; the mode decides which target is primary."""

from __future__ import annotations

from cutover.routing import RouteTable, mirrors, mode_for, primary_target
from shadow.config import CommandRouting, RoutingConfig
from shadow.model import Command, Target


def test_a_zone_without_an_entry_runs_the_default() -> None:
    routing = RoutingConfig(default="shadow", zones={"chi": "reverse"})
    assert mode_for(routing, "nyc") == "shadow" and mode_for(routing, None) == "shadow"


def test_zones_match_whatever_their_case() -> None:
    routing = RoutingConfig(default="legacy", zones={"CHI": "new"})
    assert mode_for(routing, "chi") == "new" and mode_for(routing, "Chi") == "new"


def test_reverse_and_new_make_the_new_engine_primary() -> None:
    routing = RoutingConfig(default="shadow", zones={"chi": "reverse", "den": "new", "lax": "legacy"})
    primaries = {zone: primary_target(routing, Command(kind="x", zone=zone)) for zone in ("chi", "den", "lax", "nyc")}
    assert primaries == {"chi": Target.NEW, "den": Target.NEW, "lax": Target.LEGACY, "nyc": Target.LEGACY}


def test_only_shadow_and_reverse_mirror() -> None:
    assert [m for m in ("legacy", "shadow", "reverse", "new") if mirrors(m)] == ["shadow", "reverse"]


def test_a_command_kind_can_run_its_own_mode_per_zone() -> None:
    routing = RoutingConfig(default="shadow", zones={"chi": "reverse"},
                            commands={"assign_load": CommandRouting(zones={"chi": "new", "nyc": "legacy"}),
                                      "cancel_load": CommandRouting(default="legacy")})
    assert mode_for(routing, "chi", "assign_load") == "new"        # its own zone entry
    assert mode_for(routing, "nyc", "assign_load") == "legacy"
    assert mode_for(routing, "den", "assign_load") == "shadow"     # nothing of its own: the table's default
    assert mode_for(routing, "chi", "cancel_load") == "reverse"    # the zone's entry beats its default
    assert mode_for(routing, "den", "cancel_load") == "legacy"     # its default beats the table's
    assert mode_for(routing, "chi") == "reverse" and mode_for(routing, "chi", "other") == "reverse"
    assert primary_target(routing, Command(kind="assign_load", zone="CHI")) is Target.NEW


def test_the_route_table_version_is_the_configured_number_and_a_content_hash(demo_config) -> None:
    first = RouteTable.from_config(demo_config)
    same = RouteTable.from_config(demo_config.model_copy())
    flipped = demo_config.model_copy(update={"routing": RoutingConfig(version=4, zones={"chi": "reverse"})})
    assert first.version == same.version and first.version.startswith("0-")
    assert RouteTable.from_config(flipped).version.startswith("4-")
    assert RouteTable.from_config(flipped).digest != first.digest
