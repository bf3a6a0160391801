"""The route table: per zone a mode; the mode decides which target is primary."""

from __future__ import annotations

from cutover.routing import mirrors, mode_for, primary_target
from shadow.config import RoutingConfig
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
