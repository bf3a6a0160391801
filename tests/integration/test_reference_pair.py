"""The reference dispatch pair, over real HTTP: every planted quirk shows where README.md says.

Starts REAL servers: the legacy service (SQLite) and the new engine, each as its own
subprocess (`shadow.demo.serve.serve`) on a free port of 127.0.0.1, stopped with SIGTERM in
the fixture's teardown. The quirk table is read from shadow/demo/README.md, so the table and
the services cannot drift apart unnoticed.
"""

from __future__ import annotations

import http.client
import itertools
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from shadow.demo import legacy as legacy_module
from shadow.demo import roster
from shadow.demo.planted import noise_paths, planted_quirks
from shadow.demo.run import free_port
from shadow.demo.trace import generate_trace

pytestmark = pytest.mark.integration

README = Path(roster.__file__).with_name("README.md")
TRANSITIONS = {
    "trailing/leading whitespace", "case only", "sub-second precision", "rounding",
    "null vs empty", "value", "time-zone shift", "list order only", "list length",
    "boolean representation", "enum mapping", "type change", "float epsilon",
}
ALWAYS_ON = {"zone-case", "pickup-local-time", "hazmat-bit", "status-code", "weight-string",
             "char-padding"}
ROUTES = {
    "create_load": ("POST", "/loads"),
    "assign_load": ("POST", "/loads/{load_id}/assign"),
    "reassign_load": ("POST", "/loads/{load_id}/reassign"),
    "cancel_load": ("POST", "/loads/{load_id}/cancel"),
    "update_stop_eta": ("PUT", "/loads/{load_id}/stops/{seq}/eta"),
}


# --- the README tables ---------------------------------------------------------------------


QUIRKS = {q.id: q for q in planted_quirks()}
NOISE = noise_paths()


# --- servers and a client ------------------------------------------------------------------


def _start(which: str, log: Path, db_path: str | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    code = f"from shadow.demo.serve import serve; serve({which!r}, port={port}, db_path={db_path!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log.open("wb"),
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{which} service exited early:\n{log.read_text()}")
        try:
            status, body = Client(port).call("GET", "/health")
            if status == 200 and body["target"] == which:
                return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{which} service did not answer /health within 20 s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Client:
    """A keep-alive HTTP/1.1 JSON client for one service."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call(self, method: str, path: str, body: Any = None, raw: bytes | None = None,
             token: str | None = None) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": "application/json"}
        if token:
            headers["X-Dispatch-Token"] = token
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read())


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> dict[str, Client]:
    logs = tmp_path_factory.mktemp("services")
    started = {which: _start(which, logs / f"{which}.log") for which in ("legacy", "new")}
    yield {which: Client(port) for which, (_, port) in started.items()}
    for proc, _ in started.values():
        _stop(proc)


@dataclass
class Exchange:
    """One command sent to both services: answers and the load state read after it."""

    kind: str
    legacy: dict[str, Any]
    new: dict[str, Any]

    def diffs(self) -> set[str]:
        return differences(self.legacy, self.new)


_ids = itertools.count(1)


def new_load_id() -> str:
    return f"T-{next(_ids):05d}"


def send(pair: dict[str, Client], kind: str, load_id: str, payload: dict[str, Any],
         seq: int | None = None, token: str | None = None) -> Exchange:
    method, route = ROUTES[kind]
    path = route.format(load_id=load_id, seq=seq)
    outcomes = {}
    for which, client in pair.items():
        status, response = client.call(method, path, payload, token=token)
        _, state = client.call("GET", f"/loads/{load_id}")
        outcomes[which] = {"http": status, "response": response, "state": state}
    assert outcomes["legacy"]["http"] == outcomes["new"]["http"], outcomes
    return Exchange(kind, outcomes["legacy"], outcomes["new"])


def differences(a: Any, b: Any, path: str = "") -> set[str]:
    """Paths (list indices as [*]) where two documents differ; stops are aligned by seq."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: set[str] = set()
        for key in a.keys() | b.keys():
            sub = f"{path}.{key}" if path else key
            out |= {sub} if key not in a or key not in b else differences(a[key], b[key], sub)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return {path}
        out = set()
        if a and all(isinstance(x, dict) and "seq" in x for x in a + b):
            if [x["seq"] for x in a] != [x["seq"] for x in b]:
                out.add(path)
            a, b = sorted(a, key=lambda x: x["seq"]), sorted(b, key=lambda x: x["seq"])
        for x, y in zip(a, b, strict=True):
            out |= differences(x, y, f"{path}[*]")
        return out
    return set() if type(a) is type(b) and a == b else {path}


# --- loads to play with ---------------------------------------------------------------------


def _ranked(zone: str, x: int, y: int) -> list[tuple[int, roster.Driver]]:
    ranked = [(roster.grid_cells(d.x, d.y, x, y), d) for d in roster.DRIVERS if d.zone == zone]
    return sorted(ranked, key=lambda r: (r[0], r[1].driver_id))


def _exact(cells: int) -> bool:
    return repr(cells * float(roster.KM_PER_CELL)) == repr(round(cells * 1.3, 1))


def find_origin(zone: str, *, tie: bool = False, epsilon: bool = False) -> dict[str, int]:
    """A grid cell whose nearest driver is (or is not) a diverging tie / a float epsilon."""
    order = {d.driver_id: i for i, d in enumerate(roster.LEGACY_ROSTER_ORDER)}
    for x, y in itertools.product(range(roster.GRID_SIZE), repeat=2):
        ranked = _ranked(zone, x, y)
        best = [d for cells, d in ranked if cells == ranked[0][0]]
        diverges = min(best, key=lambda d: order[d.driver_id]) is not best[0]
        if tie and not diverges or not tie and len(best) > 1:
            continue
        # For plain loads the reassign must be tie-free and exact too.
        second = [d for cells, d in ranked[1:] if cells == ranked[1][0]]
        if not tie and not epsilon and (len(second) > 1 or not _exact(ranked[1][0])):
            continue
        if _exact(ranked[0][0]) == epsilon:
            continue
        return {"x": x, "y": y}
    raise LookupError(f"no origin in {zone} with tie={tie} epsilon={epsilon}")


def load_body(load_id: str, **changes: Any) -> dict[str, Any]:
    """A create_load body that exercises no 'sometimes' quirk unless changed."""
    body = {
        "load_id": load_id, "zone": "chi", "weight_kg": 12000, "hazmat": False,
        "pickup_at": "2026-11-02T14:00:00Z", "notes": "dock 4",
        "stops": [{"seq": 1, "address": "1 Main St"}, {"seq": 2, "address": "2 Oak Ave"}],
        "origin": find_origin("chi"), "requested_at": "2026-11-02T12:00:00.000Z",
    }
    body.update(changes)
    return body


def at(hhmm: str, ms: str = "000") -> dict[str, str]:
    return {"zone": "chi", "requested_at": f"2026-11-02T{hhmm}:00.{ms}Z"}


def created(pair: dict[str, Client], **changes: Any) -> tuple[str, Exchange]:
    load_id = new_load_id()
    exchange = send(pair, "create_load", load_id, load_body(load_id, **changes))
    assert exchange.legacy["http"] == 201
    return load_id, exchange


# --- one scenario per planted quirk ---------------------------------------------------------


def char_padding(pair):
    load_id, _ = created(pair)
    assign = send(pair, "assign_load", load_id, at("12:05"))
    name = assign.new["response"]["driver_name"]
    assert assign.legacy["response"]["driver_name"] == name.ljust(20) != name
    assert assign.legacy["state"]["assignments"][0]["driver_name"] == name.ljust(20)
    eta = send(pair, "update_stop_eta", load_id, {**at("12:10"), "eta": "2026-11-02T15:00:00.000Z"},
               seq=1)
    return [assign, eta]


def zone_case(pair):
    _, create = created(pair, zone="cHi")
    assert (create.legacy["state"]["zone"], create.new["state"]["zone"]) == ("CHI", "chi")
    return [create]


def datetime_ticks(pair):
    load_id, _ = created(pair)
    out = []
    for sent, stored in [("15:04:05.125", "15:04:05.127"), ("15:04:05.001", "15:04:05.000"),
                         ("15:04:05.999", "15:04:06.000"), ("15:04:05.994", "15:04:05.993")]:
        ex = send(pair, "update_stop_eta", load_id, {**at("12:10"),
                  "eta": f"2026-11-02T{sent}Z"}, seq=2)
        assert ex.new["state"]["stops"][1]["eta"] == f"2026-11-02T{sent}Z"
        assert ex.legacy["state"]["stops"][1]["eta"] == f"2026-11-02T{stored}Z"
        out.append(ex)
    return out


def money_half_up(pair):
    _, create = created(pair, weight_kg=12001)  # 85 + 12001 x 0.125 = 1585.125
    assert (create.legacy["state"]["price"], create.new["state"]["price"]) == (1585.13, 1585.12)
    return [create]


def empty_notes(pair):
    body_changes = {"notes": None}
    _, create = created(pair, **body_changes)
    assert (create.legacy["state"]["notes"], create.new["state"]["notes"]) == ("", None)
    load_id = new_load_id()
    body = load_body(load_id)
    del body["notes"]
    absent = send(pair, "create_load", load_id, body)
    assert (absent.legacy["response"]["notes"], absent.new["response"]["notes"]) == ("", None)
    return [create, absent]


def empty_cancel_reason(pair):
    load_id, create = created(pair)
    assert create.legacy["state"]["cancel_reason"] is create.new["state"]["cancel_reason"] is None
    cancel = send(pair, "cancel_load", load_id, at("12:30"))
    assert (cancel.legacy["state"]["cancel_reason"], cancel.new["state"]["cancel_reason"]) == (
        "", None)
    other, _ = created(pair)
    given = send(pair, "cancel_load", other, {**at("12:30"), "reason": "weather"})
    assert "cancel_reason" not in {p.split(".", 1)[1] for p in given.diffs()}
    return [cancel]


def tie_break(pair):
    load_id, _ = created(pair, origin=find_origin("chi", tie=True))
    assign = send(pair, "assign_load", load_id, at("12:05"))
    legacy, new = assign.legacy["response"], assign.new["response"]
    assert legacy["driver_id"] != new["driver_id"]
    assert legacy["distance_km"] == new["distance_km"]
    assert new["driver_id"] < legacy["driver_id"]  # new: lowest id; legacy: roster order
    eta = send(pair, "update_stop_eta", load_id, {**at("12:10"), "eta": "2026-11-02T15:00:00.000Z"},
               seq=1)
    return [assign, eta]


def pickup_local_time(pair):
    _, create = created(pair, pickup_at="2026-11-02T14:00:00Z")
    assert create.legacy["state"]["pickup_at"] == "2026-11-02T08:00:00"
    assert create.new["state"]["pickup_at"] == "2026-11-02T14:00:00Z"
    _, lax = created(pair, zone="lax", origin=find_origin("lax"), pickup_at="2026-11-03T02:30:00Z")
    assert lax.legacy["state"]["pickup_at"] == "2026-11-02T18:30:00"
    return [create, lax]


def stop_order(pair):
    stops = [{"seq": 2, "address": "B"}, {"seq": 3, "address": "C"}, {"seq": 1, "address": "A"}]
    _, create = created(pair, stops=stops)
    assert [s["seq"] for s in create.legacy["state"]["stops"]] == [2, 3, 1]
    assert [s["seq"] for s in create.new["state"]["stops"]] == [1, 2, 3]
    return [create]


def retry_duplicate(pair):
    load_id, _ = created(pair)
    first = send(pair, "assign_load", load_id, at("12:05"), token="retry-token-1")
    retry = send(pair, "assign_load", load_id, at("12:05"), token="retry-token-1")
    assert len(retry.legacy["state"]["assignments"]) == 2
    assert len(retry.new["state"]["assignments"]) == 1
    assert retry.new["response"] == first.new["response"]
    assert retry.legacy["response"]["assignment_id"] != first.legacy["response"]["assignment_id"]
    eta = send(pair, "update_stop_eta", load_id, {**at("12:10"), "eta": "2026-11-02T15:00:00.000Z"},
               seq=1)
    return [first, retry, eta]


def evening_depot(pair):
    out, evening = [], ""
    for weight, hhmm, legacy_depot in [(22000, "23:59", "DEPOT-1"),   # 17:59 in Chicago
                                       (22000, "00:00", "DEPOT-2"),   # 18:00 (next day UTC)
                                       (20000, "01:00", "DEPOT-1")]:  # not heavy
        load_id, _ = created(pair, weight_kg=weight)
        day = "03" if hhmm < "12" else "02"
        ex = send(pair, "assign_load", load_id,
                  {"zone": "chi", "requested_at": f"2026-11-{day}T{hhmm}:00.000Z"})
        assert ex.legacy["response"]["depot"] == ex.legacy["state"]["depot"] == legacy_depot
        assert ex.new["response"]["depot"] == ex.new["state"]["depot"] == "DEPOT-1"
        out.append(ex)
        evening = load_id if legacy_depot == "DEPOT-2" else evening
    cancel = send(pair, "cancel_load", evening, at("12:30"))
    assert (cancel.legacy["state"]["depot"], cancel.new["state"]["depot"]) == ("DEPOT-2", "DEPOT-1")
    out.append(cancel)
    return out


def hazmat_bit(pair):
    _, yes = created(pair, hazmat=True)
    _, no = created(pair, hazmat=False)
    assert (yes.legacy["state"]["hazmat"], yes.new["state"]["hazmat"]) == (1, True)
    assert type(no.legacy["state"]["hazmat"]) is int and no.new["state"]["hazmat"] is False
    return [yes, no]


def status_code(pair):
    load_id, create = created(pair)
    assign = send(pair, "assign_load", load_id, at("12:05"))
    cancel = send(pair, "cancel_load", load_id, {**at("12:30"), "reason": "weather"})
    seen = [(e.legacy["state"]["status"], e.new["state"]["status"]) for e in (create, assign, cancel)]
    assert seen == [("O", "open"), ("A", "assigned"), ("C", "cancelled")]
    assert (assign.legacy["response"]["status"], assign.new["response"]["status"]) == (
        "A", "assigned")
    return [create, assign, cancel]


def weight_string(pair):
    _, create = created(pair, weight_kg=12000)
    assert (create.legacy["state"]["weight_kg"], create.new["state"]["weight_kg"]) == (
        "12000.00", 12000)
    return [create]


def distance_epsilon(pair):
    load_id, _ = created(pair, origin=find_origin("chi", epsilon=True))
    assign = send(pair, "assign_load", load_id, at("12:05"))
    legacy, new = assign.legacy["response"]["distance_km"], assign.new["response"]["distance_km"]
    assert legacy != new and abs(legacy - new) < 1e-9 and legacy == round(new, 1)
    eta = send(pair, "update_stop_eta", load_id, {**at("12:10"), "eta": "2026-11-02T15:00:00.000Z"},
               seq=1)
    return [assign, eta]


SCENARIOS: dict[str, Callable[[dict[str, Client]], list[Exchange]]] = {
    "char-padding": char_padding, "zone-case": zone_case, "datetime-ticks": datetime_ticks,
    "money-half-up": money_half_up, "empty-notes": empty_notes,
    "empty-cancel-reason": empty_cancel_reason, "tie-break": tie_break,
    "pickup-local-time": pickup_local_time, "stop-order": stop_order,
    "retry-duplicate": retry_duplicate, "evening-depot": evening_depot,
    "hazmat-bit": hazmat_bit, "status-code": status_code, "weight-string": weight_string,
    "distance-epsilon": distance_epsilon,
}


# --- tests ---------------------------------------------------------------------------------


def test_quirk_table_is_well_formed_and_every_quirk_has_a_scenario():
    assert len(QUIRKS) >= 12
    assert set(QUIRKS) == set(SCENARIOS)
    for row in QUIRKS.values():
        assert row.transition in TRANSITIONS, row
        assert row.paths and all(re.fullmatch(r"(response|state)(\.\w+(\[\*\])?)+", p) for p in row.paths), row
        assert set(row.commands) <= set(ROUTES), row
        module, function = row.where.split(": ")
        assert module == "legacy.py" and callable(getattr(legacy_module, function)), row
    fingerprints = [(p, row.transition) for row in QUIRKS.values() for p in row.paths]
    assert len(fingerprints) == len(set(fingerprints)), "two quirks share path and transition"


@pytest.mark.parametrize("quirk", sorted(SCENARIOS))
def test_planted_quirk_appears_at_its_documented_paths(pair, quirk):
    row = QUIRKS[quirk]
    exchanges = SCENARIOS[quirk](pair)
    documented = set(row.paths)
    commands = set(row.commands)
    seen = set()
    for exchange in exchanges:
        hits = exchange.diffs() & documented
        assert not hits or exchange.kind in commands, (exchange.kind, hits)
        seen |= hits
    assert seen == documented


def test_a_plain_load_differs_only_by_always_on_quirks_and_noise(pair):
    allowed = NOISE | {p for q in ALWAYS_ON for p in QUIRKS[q].paths}
    load_id, create = created(pair)
    exchanges = [
        create,
        send(pair, "assign_load", load_id, at("12:05")),
        send(pair, "update_stop_eta", load_id, {**at("12:10"), "eta": "2026-11-02T15:00:00.007Z"},
             seq=2),
        send(pair, "reassign_load", load_id, {**at("12:20"), "reason": "driver sick"}),
        send(pair, "cancel_load", load_id, {**at("12:30"), "reason": "weather"}),
    ]
    seen = set().union(*(e.diffs() for e in exchanges))
    assert seen <= allowed, seen - allowed
    assert {"state.zone", "state.status", "state.hazmat", "state.weight_kg", "state.pickup_at",
            "response.driver_name"} <= seen


def test_a_replayed_trace_differs_only_at_documented_paths(pair):
    documented = {p: set(row.commands) for row in QUIRKS.values() for p in row.paths}
    prefix = f"R{next(_ids)}-"
    for command in generate_trace(600, seed=2):
        load_id = prefix + command.keys["load_id"]
        payload = {**command.payload, "load_id": load_id} if command.kind == "create_load" \
            else command.payload
        exchange = send(pair, command.kind, load_id, payload, seq=command.keys.get("seq"),
                        token=prefix + command.token)
        assert exchange.legacy["http"] in (200, 201), exchange
        for path in exchange.diffs() - NOISE:
            assert command.kind in documented.get(path, ()), (command.kind, path, exchange)


@pytest.mark.parametrize("method, path, raw, status", [
    ("POST", "/loads", b"{not json", 400),
    ("POST", "/loads", b'{"load_id": "X-1"}', 400),
    ("POST", "/loads", json.dumps(load_body("X-2", zone="sfo")).encode(), 400),
    ("POST", "/loads", json.dumps(load_body("X-3", weight_kg="heavy")).encode(), 400),
    ("POST", "/loads/NOPE/assign", json.dumps(at("12:00")).encode(), 404),
    ("POST", "/loads/NOPE/cancel", b"[]", 400),
    ("PUT", "/loads/NOPE/stops/x/eta", b"{}", 400),
    ("GET", "/loads/NOPE", None, 404),
])
def test_bad_input_gets_the_same_json_error_from_both(pair, method, path, raw, status):
    for client in pair.values():
        got, body = client.call(method, path, raw=raw)
        assert (got, set(body)) == (status, {"error"}), body


def test_refusals_agree_unknown_stop_duplicate_load_and_cancelled_load(pair):
    load_id, _ = created(pair)
    eta = {**at("12:10"), "eta": "2026-11-02T15:00:00.000Z"}
    assert send(pair, "update_stop_eta", load_id, eta, seq=9).legacy["http"] == 404
    assert send(pair, "create_load", load_id, load_body(load_id)).legacy["http"] == 409
    assert send(pair, "reassign_load", load_id, at("12:10")).legacy["http"] == 409
    send(pair, "cancel_load", load_id, at("12:20"))
    assert send(pair, "assign_load", load_id, at("12:30")).legacy["http"] == 409


def test_legacy_keeps_its_database_file_and_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "legacy.db"
    proc, port = _start("legacy", tmp_path / "legacy.log", db_path=str(db))
    try:
        assert Client(port).call("POST", "/loads", load_body("K-1"))[0] == 201
    finally:
        assert _stop(proc) == 0
    proc, port = _start("legacy", tmp_path / "again.log", db_path=str(db))
    try:
        status, state = Client(port).call("GET", "/loads/K-1")
        assert (status, state["zone"]) == (200, "CHI")
    finally:
        assert _stop(proc) == 0
