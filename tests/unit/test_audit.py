"""The audit log: append-only, hash-chained; editing or deleting any entry is found by verify."""

from __future__ import annotations

import json

import sqlalchemy as sa

from rules.triage import triage
from shadow import audit
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into


def test_entries_chain_and_verify(catalogue) -> None:
    first = audit.append(catalogue.engine, actor="dana", action="verdict", subject="quirk:abc", detail={"to": "retire"})
    second = audit.append(catalogue.engine, actor="lee", action="flip", subject="zone:chi", detail={"to": "reverse"})
    assert first.prev_hash == audit.GENESIS and second.prev_hash == first.hash
    assert audit.verify(catalogue.engine) == (True, None, 2)
    assert [e.actor for e in audit.entries(catalogue.engine, subject="zone:chi")] == ["lee"]


def test_an_edited_entry_breaks_the_chain_where_it_was_edited(catalogue) -> None:
    for i in range(5):
        audit.append(catalogue.engine, actor="dana", action="verdict", subject=f"quirk:{i}", detail={"to": "retire"})
    with catalogue.engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    assert audit.verify(catalogue.engine) == (False, 3, 3)


def test_a_deleted_entry_breaks_the_chain_after_it(catalogue) -> None:
    for i in range(4):
        audit.append(catalogue.engine, actor="dana", action="verdict", subject=f"quirk:{i}")
    with catalogue.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM audit_log WHERE seq = 2"))
    assert audit.verify(catalogue.engine) == (False, 3, 2)


def test_reordered_entries_break_the_chain_at_the_first_moved_one(catalogue) -> None:
    for i in range(5):
        audit.append(catalogue.engine, actor="guard", action="guard.window", subject="zone:chi", detail={"n": i})
    with catalogue.engine.begin() as conn:  # swap entries 2 and 4, each row intact
        conn.execute(sa.text("UPDATE audit_log SET seq = 100 WHERE seq = 2"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
        conn.execute(sa.text("UPDATE audit_log SET seq = 4 WHERE seq = 100"))
    assert audit.verify(catalogue.engine) == (False, 2, 2)


def test_audit_list_by_zone_and_action(catalogue) -> None:
    from typer.testing import CliRunner

    from shadow.cli import app

    audit.append(catalogue.engine, actor="lee", action="cutover.flip", subject="zone:chi", detail={"to": "reverse"})
    audit.append(catalogue.engine, actor="guard", action="guard.window", subject="zone:chi", detail={"seconds": 3.1})
    audit.append(catalogue.engine, actor="lee", action="cutover.flip", subject="zone:nyc", detail={"to": "reverse"})
    store = catalogue.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["audit", "list", "--store", store, "--zone", "chi", "--json"])
    assert [e["action"] for e in json.loads(result.stdout)] == ["cutover.flip", "guard.window"]
    result = CliRunner().invoke(app, ["audit", "list", "--store", store, "--action", "cutover.flip", "--json"])
    assert [e["subject"] for e in json.loads(result.stdout)] == ["zone:chi", "zone:nyc"]


def test_triage_records_who_changed_which_verdict(catalogue, tmp_path) -> None:
    pair = Pair(command=Command(kind="assign_load", token="t1"),
                legacy=Outcome(target=Target.LEGACY, status=Status.OK, state={"zone": "CHI"}),
                new=Outcome(target=Target.NEW, status=Status.OK, state={"zone": "chi"}))
    compare_into([pair], catalogue, rules_folder=tmp_path / "rules", detect_noise=False)
    quirk = catalogue.quirks()[0].id
    triage(catalogue, tmp_path / "rules", quirk, "reproduce", owner="dana")
    triage(catalogue, tmp_path / "rules", quirk, "retire", owner="lee", note="agreed", ticket="DISP-1")
    history = audit.entries(catalogue.engine, subject=f"quirk:{quirk}")
    assert [(e.actor, e.detail["from"], e.detail["to"]) for e in history] == [("dana", "open", "reproduce"),
                                                                              ("lee", "reproduce", "retire")]
    assert history[1].detail["ticket"] == "DISP-1" and audit.verify(catalogue.engine)[0]


def _append_many(url: str, writer: int) -> None:
    from rules.catalogue import open_catalogue

    catalogue = open_catalogue(url)
    for i in range(25):
        audit.append(catalogue.engine, actor=f"proxy-{writer}", action="guard.window", subject="zone:chi",
                     detail={"n": i})
    catalogue.close()


def test_processes_appending_at_once_keep_one_chain(tmp_path) -> None:
    import multiprocessing

    from rules.catalogue import open_catalogue

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    open_catalogue(url).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append_many, args=(url, n)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    catalogue = open_catalogue(url)
    try:
        assert audit.verify(catalogue.engine) == (True, None, 100)
    finally:
        catalogue.close()
