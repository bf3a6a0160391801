"""The triage page without a browser (aiohttp's test server): who may read and who may decide, what a decision
writes (the same as `shadow quirks triage`), bulk triage, rule previews, filters and pages, and what never
reaches a page (secrets, unescaped payloads, inline script)."""

from __future__ import annotations

import asyncio
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import pytest
import tomllib
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestServer
from typer.testing import CliRunner

from rules.catalogue import Catalogue, open_catalogue
from rules.triage import triage
from shadow import audit
from shadow.config import UiConfig, parse_config
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into
from shadow.web import create_app
from shadow.web.session import VISIT_COOKIE, Visits

BASE = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
TOKEN = "correct-horse-battery-staple-42"
SCRIPT_PAYLOAD = "<script>alert(1)</script>"
ATTRIBUTE_PAYLOAD = '"><img src=x onerror=alert(1)>'
HOSTILE_KEY = "<b>x</b>`y"
DSN_PASSWORD = "pg-Secret-9f8e7d"


def pair(n: int, legacy: dict, new: dict, *, kind: str = "assign_load", zone: str = "chi", hours: float = 0) -> Pair:
    return Pair(
        command=Command(kind=kind, token=f"tok-{n:04d}", zone=zone, keys={"load_id": f"L-{n:04d}"},
                        received_at=BASE + timedelta(hours=hours, minutes=n % 60), payload={"driver": "D-7", "n": n}),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, state=legacy, latency_ms=4.0),
        new=Outcome(target=Target.NEW, status=Status.OK, http_status=200, state=new, latency_ms=3.0),
    )


def sample() -> list[Pair]:
    """Padded driver names (assign, chi+nyc), upper-cased zones (create, lax), 1/0 booleans, hostile payloads,
    and, two hours later, a new quirk (depot)."""
    pairs = []
    for n in range(24):
        pairs.append(pair(n, {"driver_name": "Ann Smith   ", "load_id": n}, {"driver_name": "Ann Smith", "load_id": n},
                          zone="chi" if n % 3 else "nyc"))
    for n in range(24, 36):
        pairs.append(pair(n, {"zone": "LAX", "hazmat": 1}, {"zone": "lax", "hazmat": True}, kind="create_load",
                          zone="lax"))
    for n in range(36, 40):
        pairs.append(pair(n, {"instructions": SCRIPT_PAYLOAD, HOSTILE_KEY: 1, "dsn": f"postgresql://u:{DSN_PASSWORD}@db/x"},
                          {"instructions": ATTRIBUTE_PAYLOAD, HOSTILE_KEY: 2, "dsn": "postgresql://u@db/x"},
                          kind="update_stop_eta"))
    for n in range(40, 43):
        pairs.append(pair(n, {"depot": "D-2"}, {"depot": "D-1"}, kind="cancel_load", zone="nyc", hours=2))
    return pairs


def fill(folder: Path) -> Catalogue:
    catalogue = open_catalogue(f"sqlite:///{folder / 'catalogue.db'}")
    compare_into(sample(), catalogue, rules_folder=folder / "rules", detect_noise=False)
    return catalogue


def quirk_of(catalogue: Catalogue, field: str):
    return next(q for q in catalogue.quirks() if q.field == field)


@dataclass
class Page:
    status: int
    text: str
    headers: dict[str, str]
    cookies: list[str]

    @property
    def csrf(self) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.text).group(1)


class Client:
    """A synchronous client for the app on aiohttp's test server (its own event loop in a thread); keeps cookies."""

    def __init__(self, app) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = TestServer(app)
        self._run(self.server.start_server())
        self.session = self._run(self._session())

    async def _session(self) -> ClientSession:
        return ClientSession(cookie_jar=CookieJar(unsafe=True))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _request(self, method: str, path: str, **kwargs) -> Page:
        async with self.session.request(method, self.server.make_url(path), allow_redirects=False, **kwargs) as resp:
            return Page(resp.status, await resp.text(), dict(resp.headers), resp.headers.getall("Set-Cookie", []))

    def get(self, path: str, **kwargs) -> Page:
        return self._run(self._request("GET", path, **kwargs))

    def post(self, path: str, data, **kwargs) -> Page:
        return self._run(self._request("POST", path, data=data, **kwargs))

    def sign_in(self, name: str = "dana", token: str = TOKEN) -> Page:
        form = self.get("/signin")
        return self.post("/signin", {"name": name, "token": token, "csrf": form.csrf, "next": "/"})

    def csrf(self, path: str = "/") -> str:
        return self.get(path).csrf

    def set_cookie(self, name: str, value: str) -> None:
        self.session.cookie_jar.update_cookies({name: value}, self.server.make_url("/"))

    def close(self) -> None:
        self._run(self.session.close())
        self._run(self.server.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def site(tmp_path: Path):
    catalogue = fill(tmp_path)
    client = Client(create_app(catalogue, tmp_path / "rules", token=TOKEN))
    yield client, catalogue, tmp_path / "rules"
    client.close()
    catalogue.close()


def verdict_form(csrf: str, verdict: str = "retire", **fields) -> dict:
    return {"csrf": csrf, "verdict": verdict, "owner": "dana", "note": "nobody relies on the padding",
            "ticket": "DISP-812", **fields}


# -- reading needs nothing; deciding needs a sign-in and the form's CSRF token ------------------------------

def test_every_page_is_readable_without_signing_in_and_offers_no_decision(site) -> None:
    client, catalogue, _ = site
    quirk = quirk_of(catalogue, "driver_name")
    for path in ("/", f"/quirks/{quirk.id}", "/pairs?key=load_id=L-0001", "/pairs", "/signin"):
        page = client.get(path)
        assert page.status == 200, path
        assert 'type="radio" name="verdict"' not in page.text and 'name="ids"' not in page.text, path
        assert "<textarea" not in page.text, path
    assert "Sign in to decide" in client.get(f"/quirks/{quirk.id}").text


def test_a_post_without_sign_in_is_refused_and_writes_nothing(site) -> None:
    client, catalogue, rules = site
    quirk = quirk_of(catalogue, "driver_name")
    csrf = client.get("/signin").csrf  # an anonymous session has a CSRF token, but no right to decide
    for path, data in ((f"/quirks/{quirk.id}/verdict", verdict_form(csrf)),
                       ("/quirks/verdict", {**verdict_form(csrf), "ids": quirk.id}),
                       (f"/quirks/{quirk.id}/rule", {"csrf": csrf, "text": "[[noise]]\npath = \"**.x\"\n"}),
                       (f"/quirks/{quirk.id}/rule/preview", {"csrf": csrf, "text": ""})):
        page = client.post(path, data)
        assert page.status == 403, path
        assert "sign in" in page.text
    assert not rules.exists() or list(rules.glob("*.toml")) == []
    assert catalogue.quirk(quirk.id).verdict == "open"
    assert audit.entries(catalogue.engine) == []


def test_a_wrong_token_is_refused(site) -> None:
    client, catalogue, _ = site
    page = client.sign_in(token="correct-horse-battery-staple-43")
    assert page.status == 401 and "not the one" in page.text
    assert "signed in as" not in client.get("/").text
    quirk = quirk_of(catalogue, "zone")
    assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(client.csrf("/signin"))).status == 403


def test_a_page_without_a_token_configured_is_read_only(tmp_path: Path) -> None:
    catalogue = fill(tmp_path)
    client = Client(create_app(catalogue, tmp_path / "rules", token=None))
    try:
        assert "Sign in" not in client.get("/").text and "read-only" in client.get("/").text
        assert 'name="token"' not in client.get("/signin").text
        page = client.post("/signin", {"name": "dana", "token": ""})
        assert page.status == 403 and "switched off" in page.text
    finally:
        client.close()
        catalogue.close()


def test_the_session_cookie_is_httponly_and_samesite_strict(site) -> None:
    client, _, _ = site
    page = client.sign_in()
    assert page.status == 303 and page.headers["Location"] == "/"
    cookie = next(c for c in page.cookies if c.startswith("shadow_session="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "signed in as" in client.get("/").text


def test_a_post_without_or_with_a_wrong_csrf_token_is_refused(site) -> None:
    client, catalogue, rules = site
    client.sign_in()
    quirk = quirk_of(catalogue, "driver_name")
    good = client.csrf()
    without = {k: v for k, v in verdict_form(good).items() if k != "csrf"}
    for data in (without, verdict_form(good[:-2] + "xx"), verdict_form("")):
        page = client.post(f"/quirks/{quirk.id}/verdict", data)
        assert page.status == 403 and "CSRF" in page.text
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
                    {"Sec-Fetch-Site": "cross-site"}):
        assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(good), headers=headers).status == 403, headers
    assert not rules.exists() or list(rules.glob("*.toml")) == []
    assert catalogue.quirk(quirk.id).verdict == "open"


def test_signing_out_ends_the_right_to_decide(site) -> None:
    client, catalogue, _ = site
    client.sign_in()
    csrf = client.csrf()
    assert client.post("/signout", {"csrf": csrf}).status == 303
    quirk = quirk_of(catalogue, "zone")
    assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(csrf)).status == 403


# -- deciding: the same rule file, catalogue row and audit entry as the CLI ---------------------------------

def _decided(catalogue: Catalogue, rules: Path, quirk_id: str) -> tuple[dict, tuple, list]:
    text = (rules / f"quirk-{quirk_id}.toml").read_text()
    table = tomllib.loads(text)["quirk"]
    table.pop("decided_at")
    q = catalogue.quirk(quirk_id)
    entries = [(e.actor, e.action, e.subject, e.detail) for e in audit.entries(catalogue.engine)]
    return table, (q.verdict, q.owner, q.note, q.ticket, q.verdict_source), entries


def test_a_verdict_from_the_page_writes_what_shadow_quirks_triage_writes(site, tmp_path: Path) -> None:
    client, catalogue, rules = site
    quirk = quirk_of(catalogue, "driver_name")
    twin_folder = tmp_path / "twin"
    twin_folder.mkdir()
    fill(twin_folder).close()  # the same pairs compared the same way: the same quirks
    client.sign_in()
    page = client.post(f"/quirks/{quirk.id}/verdict?verdict=open&i=0", verdict_form(client.csrf()))
    assert page.status == 303 and page.headers["Location"] == f"/quirks/{quirk.id}?verdict=open&i=0"
    result = CliRunner().invoke(__import__("shadow.cli", fromlist=["app"]).app, [
        "quirks", "triage", quirk.id, "--verdict", "retire", "--owner", "dana", "--note", "nobody relies on the padding",
        "--ticket", "DISP-812", "--store", f"sqlite:///{twin_folder / 'catalogue.db'}", "--rules",
        str(twin_folder / "rules")])
    assert result.exit_code == 0, result.output
    twin = open_catalogue(f"sqlite:///{twin_folder / 'catalogue.db'}")
    try:
        assert _decided(catalogue, rules, quirk.id) == _decided(twin, twin_folder / "rules", quirk.id)
    finally:
        twin.close()
    table, row, entries = _decided(catalogue, rules, quirk.id)
    assert row[:4] == ("retire", "dana", "nobody relies on the padding", "DISP-812")
    assert entries == [("dana", "verdict", f"quirk:{quirk.id}", {"from": "open", "to": "retire", "note": "nobody relies "
                        "on the padding", "ticket": "DISP-812", "rule_file": f"quirk-{quirk.id}.toml"})]
    shown = client.get(f"/quirks/{quirk.id}").text
    assert "open → retire" in shown and "written to quirk-" in shown  # history, and the flash message


def test_a_verdict_keeps_the_comments_of_an_existing_rule_file(site) -> None:
    client, catalogue, rules = site
    quirk = quirk_of(catalogue, "zone")
    rules.mkdir(exist_ok=True)
    (rules / "zones.toml").write_text(f'# Legacy upper-cases zones: decided in the March review.\n[quirk]\nid = "{quirk.id}"\n'
                                      f'verdict = "open"  # to be decided\n')
    client.sign_in()
    assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(client.csrf(), "reproduce")).status == 303
    text = (rules / "zones.toml").read_text()
    assert "# Legacy upper-cases zones: decided in the March review." in text and 'verdict = "reproduce"' in text
    assert catalogue.quirk(quirk.id).verdict == "reproduce"


def test_a_verdict_needs_an_owner_and_a_known_verdict(site) -> None:
    client, catalogue, _ = site
    quirk = quirk_of(catalogue, "zone")
    client.sign_in()
    csrf = client.csrf()
    assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(csrf, owner=" ")).status == 400
    assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(csrf, "maybe")).status == 400
    assert client.post(f"/quirks/{quirk.id}/verdict", verdict_form(csrf, ticket="<b>")).status == 400
    assert client.post("/quirks/ffffffffffff/verdict", verdict_form(csrf)).status == 404
    assert catalogue.quirk(quirk.id).verdict == "open"


def test_bulk_triage_decides_every_selected_quirk(site) -> None:
    client, catalogue, rules = site
    chosen = [quirk_of(catalogue, "zone").id, quirk_of(catalogue, "hazmat").id]
    client.sign_in()
    page = client.get("/?command=create_load")
    assert all(f'name="ids" value="{i}"' in page.text for i in chosen)
    data = [("csrf", page.csrf), ("verdict", "retire"), ("owner", "sam"), ("note", "case and 1/0 do not matter"),
            ("back", "/?command=create_load"), *[("ids", i) for i in chosen]]
    answer = client.post("/quirks/verdict", data)
    assert answer.status == 303 and answer.headers["Location"] == "/?command=create_load"
    assert {catalogue.quirk(i).verdict for i in chosen} == {"retire"}
    assert sorted(p.name for p in rules.glob("*.toml")) == sorted(f"quirk-{i}.toml" for i in chosen)
    assert [e.subject for e in audit.entries(catalogue.engine, action="verdict")] == [f"quirk:{i}" for i in chosen]
    assert client.post("/quirks/verdict", [*data, ("back", "//evil.example/")]).headers["Location"] == "/?command=create_load"


def test_a_rule_preview_says_what_it_would_match_and_close_and_writes_nothing(site) -> None:
    client, catalogue, rules = site
    quirk = quirk_of(catalogue, "driver_name")
    client.sign_in()
    text = '[[normalise]]\npath = "**.driver_name"\ntrim = true\n'
    page = client.post(f"/quirks/{quirk.id}/rule/preview", {"csrf": client.csrf(), "text": text})
    assert page.status == 200
    assert re.search(r'data-figure="removed">24<', page.text) and re.search(r'data-figure="closed">1<', page.text)
    assert "trim = true" in page.text  # the draft is kept in the editor
    assert not rules.exists() or list(rules.glob("*.toml")) == []
    broken = client.post(f"/quirks/{quirk.id}/rule/preview", {"csrf": client.csrf(), "text": "[[normalise]]\npath = 3\n"})
    assert broken.status == 400 and "normalise[0].path" in broken.text


def test_saving_a_rule_file_validates_writes_and_audits_it(site) -> None:
    client, catalogue, rules = site
    quirk = quirk_of(catalogue, "driver_name")
    client.sign_in()
    other = '[quirk]\nid = "abcdef123456"\nverdict = "noise"\n'
    bad = client.post(f"/quirks/{quirk.id}/rule", {"csrf": client.csrf(), "text": other})
    assert bad.status == 400 and "is not this quirk" in bad.text
    text = (f'# padding\n[quirk]\nid = "{quirk.id}"\nverdict = "retire"\nowner = "dana"\n\n'
            '[[normalise]]\npath = "**.driver_name"\ntrim = true\n')
    assert client.post(f"/quirks/{quirk.id}/rule", {"csrf": client.csrf(), "text": text}).status == 303
    assert (rules / f"quirk-{quirk.id}.toml").read_text() == text
    assert catalogue.quirk(quirk.id).verdict == "retire"
    assert [(e.actor, e.action) for e in audit.entries(catalogue.engine, subject=f"quirk:{quirk.id}")] == [("dana", "rule")]
    assert "rule file created" in client.get(f"/quirks/{quirk.id}").text


# -- the list: filters, sort, pages, marks -----------------------------------------------------------------

def rows(page: Page) -> list[str]:
    return re.findall(r'<tr data-quirk="([0-9a-f]+)"', page.text)


def test_filters_by_verdict_command_zone_owner_and_text(site) -> None:
    client, catalogue, rules = site
    triage(catalogue, rules, quirk_of(catalogue, "zone").id, "retire", owner="sam")
    by_field = {q.id: q.field for q in catalogue.quirks()}

    def fields(query: str) -> set[str]:
        return {by_field[i] for i in rows(client.get("/" + query))}

    assert fields("") == set(by_field.values())
    assert fields("?verdict=retire") == {"zone"}
    assert fields("?command=create_load") == {"zone", "hazmat"}
    assert fields("?zone=nyc") == {"driver_name", "depot"}
    assert fields("?owner=sam") == {"zone"}
    assert fields("?q=pads") == {"driver_name"}                   # the plain words
    assert fields("?q=DRIVER+trailing") == {"driver_name"}        # every word, any case
    assert fields("?q=100%25") == set()                           # % is a character, not a wildcard
    assert fields("?verdict=open&command=create_load") == {"hazmat"}
    assert fields("?verdict=bogus&sort=bogus&page=x") == set(by_field.values())  # unknown values are ignored


def test_sorting_follows_the_catalogue(site) -> None:
    client, catalogue, _ = site
    for sort in ("count", "newest", "first_seen", "last_seen"):
        assert rows(client.get(f"/?sort={sort}")) == [q.id for q in catalogue.quirks(sort=sort)], sort
    assert rows(client.get("/?sort=newest"))[0] == quirk_of(catalogue, "depot").id


def test_pages_of_fifty(tmp_path: Path) -> None:
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'many.db'}")
    compare_into([pair(n, {f"field_{n:03d}": "a"}, {f"field_{n:03d}": "b"}) for n in range(120)], catalogue,
                 detect_noise=False)
    client = Client(create_app(catalogue, tmp_path / "rules"))
    try:
        expected = [q.id for q in catalogue.quirks()]
        first, third = client.get("/"), client.get("/?page=3")
        assert rows(first) == expected[:50] and rows(client.get("/?page=2")) == expected[50:100]
        assert rows(third) == expected[100:] and "page 3 of 3" in third.text
        assert 'rel="next"' in first.text and 'rel="next"' not in third.text
        assert rows(client.get("/?page=99")) == expected[100:]  # past the end: the last page
        # a quirk opened from the list links to its neighbours under the same filters and sort
        quirk = client.get(f"/quirks/{expected[50]}?i=50")
        assert f"/quirks/{expected[49]}?i=49" in quirk.text and f"/quirks/{expected[51]}?i=51" in quirk.text
    finally:
        client.close()
        catalogue.close()


def test_quirks_first_seen_since_the_last_visit_are_marked(site) -> None:
    client, catalogue, _ = site
    assert "is-new" not in client.get("/").text  # a first visit marks nothing
    last_visit = (BASE + timedelta(hours=1)).timestamp()
    client.set_cookie(VISIT_COOKIE, f":{int(last_visit)}")
    page = client.get("/")
    marked = re.findall(r'<tr data-quirk="([0-9a-f]+)" class="is-new"', page.text)
    assert marked == [quirk_of(catalogue, "depot").id]
    assert client.get("/").text.count('class="is-new"') == 1  # still this visit: still marked
    assert Visits.read(f"{int(last_visit)}:{int(last_visit) + 60}", now=last_visit + 120).since.timestamp() == last_visit


def test_the_rows_say_what_differs_in_plain_words(site) -> None:
    client, _, _ = site
    text = client.get("/").text
    assert "legacy pads <code>driver_name</code> with trailing spaces" in text
    assert "legacy upper-cases <code>zone</code>" in text
    assert "boolean <code>hazmat</code>: 1/0 in legacy vs true/false in the new engine" in text
    assert text.count('<svg class="chart spark-chart"') == len(rows(client.get("/")))


# -- what never reaches a page -------------------------------------------------------------------------------

class Tags(HTMLParser):
    """Every start tag of a page, with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found.append((tag, attrs))


def _all_pages(client: Client, catalogue: Catalogue) -> list[Page]:
    paths = ["/", "/?q=dsn", "/signin", "/pairs", "/pairs?key=load_id=L-0036", "/quirks/000000000000", "/static/triage.js"]
    paths += [f"/quirks/{q.id}" for q in catalogue.quirks()]
    return [client.get(p) for p in paths]


def test_no_secret_is_rendered_anywhere(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("LEGACY_DB_PASSWORD", DSN_PASSWORD)
    config = parse_config(f"""
[targets.legacy]
url = "http://127.0.0.1:8081"
state = "postgresql+psycopg://shadow:${{LEGACY_DB_PASSWORD}}@db/legacy"
[targets.new]
url = "http://127.0.0.1:8082"
[store]
url = "sqlite:///{tmp_path / 'catalogue.db'}"
""")
    assert config.targets["legacy"].state.reveal().count(DSN_PASSWORD) == 1
    from shadow.secrets import register_secret

    register_secret(TOKEN)  # as `shadow ui` does with the token it read
    catalogue = fill(tmp_path)
    client = Client(create_app(catalogue, tmp_path / "rules", token=TOKEN))
    try:
        client.sign_in()
        quirk = quirk_of(catalogue, "instructions")
        client.post(f"/quirks/{quirk.id}/rule/preview", {"csrf": client.csrf(), "text": f"# {TOKEN} {DSN_PASSWORD}\n"})
        pages = _all_pages(client, catalogue)
        pages.append(client.post(f"/quirks/{quirk.id}/rule/preview", {"csrf": client.csrf(), "text": f"# {DSN_PASSWORD}"}))
        assert any("dsn" in p.text for p in pages)  # the payload holding the password is shown …
        for page in pages:
            assert DSN_PASSWORD not in page.text and TOKEN not in page.text  # … masked
            assert DSN_PASSWORD not in str(page.headers) and TOKEN not in str(page.headers)
    finally:
        client.close()
        catalogue.close()


def test_payload_values_and_field_names_are_escaped(site) -> None:
    client, catalogue, _ = site
    client.sign_in()
    for field in ("instructions", HOSTILE_KEY):
        page = client.get(f"/quirks/{quirk_of(catalogue, field).id}")
        assert "<script>alert" not in page.text and "<img" not in page.text and "<b>x" not in page.text
    page = client.get(f"/quirks/{quirk_of(catalogue, 'instructions').id}")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    listing = client.get("/?q=x")
    assert "&lt;b&gt;x&lt;/b&gt;" in listing.text and "<b>x" not in listing.text
    entity = client.get("/pairs?key=load_id=L-0036")
    assert "<script>alert" not in entity.text and "&lt;script&gt;" in entity.text


def test_pages_carry_a_strict_csp_and_no_inline_script_or_style(site) -> None:
    client, catalogue, _ = site
    client.sign_in()
    for page in _all_pages(client, catalogue):
        csp = page.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
        if page.headers["Content-Type"].startswith("text/html"):
            tags = Tags()
            tags.feed(page.text)
            assert all(dict(attrs).get("src") for tag, attrs in tags.found if tag == "script")
            assert not [(tag, name) for tag, attrs in tags.found for name, _ in attrs
                        if name == "style" or name.startswith("on")]
            assert "style" not in {tag for tag, _ in tags.found}


def test_static_files_come_from_the_package(site) -> None:
    client, _, _ = site
    for name, kind in (("triage.js", "text/javascript"), ("triage.css", "text/css"), ("report.css", "text/css")):
        page = client.get(f"/static/{name}")
        assert page.status == 200 and page.headers["Content-Type"].startswith(kind)
    assert client.get("/static/../app.py").status == 404
    assert client.get("/quirks/not-an-id").status == 404
    wrong_method = client.post("/", {})
    assert wrong_method.status == 405 and "Content-Security-Policy" in wrong_method.headers


def test_the_entity_audit_lists_what_touched_a_key(site) -> None:
    client, catalogue, _ = site
    quirk = quirk_of(catalogue, "driver_name")
    page = client.get(f"/quirks/{quirk.id}")
    assert "/pairs?key=load_id%3DL-0000" in page.text and "shadow pairs show --key load_id=L-0000" in page.text
    entity = client.get("/pairs?key=load_id%3DL-0000")
    assert entity.status == 200 and "tok-0000" in entity.text and f"/quirks/{quirk.id}" in entity.text
    assert client.get("/pairs?key=nonsense").status == 400


def test_ui_settings_default_to_this_machine_only() -> None:
    settings = UiConfig()
    assert (settings.host, settings.port, settings.token_env) == ("127.0.0.1", 8089, "SHADOW_UI_TOKEN")
    assert all(field.description for field in UiConfig.model_fields.values())


def test_sparklines_read_days_cut_in_sql_equal_to_the_hours_summed(tmp_path: Path) -> None:
    catalogue = open_catalogue(f"sqlite:///{tmp_path / 'days.db'}")
    try:
        compare_into([pair(n, {"code": "A "}, {"code": "A"}, hours=n * 5) for n in range(30)], catalogue,
                     detect_noise=False)
        quirk = catalogue.quirks()[0].id
        hours, days = catalogue.timelines([quirk])[quirk], catalogue.timelines([quirk], by="day")[quirk]
        summed: dict[datetime, int] = {}
        for when, n in hours:
            summed[when.replace(hour=0)] = summed.get(when.replace(hour=0), 0) + n
        assert len(hours) == 30 and sorted(days) == sorted(summed.items()) and len(days) == 7
        assert all(when.tzinfo is timezone.utc for when, _ in days)
    finally:
        catalogue.close()
