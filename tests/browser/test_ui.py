"""The triage page in Debian's Chromium (Playwright): `shadow ui` started as a command over a catalogue filled by
replaying the reference dispatch pair, then filtered, opened, signed in to, decided — with the keyboard — and
checked on disk, in the catalogue and in the audit log. Hostile payloads stay inert, POSTs without sign-in or
CSRF token are refused, axe-core finds no serious or critical violation at 1280 and 390 px, nothing is fetched
from anywhere else. Keeps docs/images/triage-list.png and triage-quirk.png for the README."""

from __future__ import annotations

import asyncio
import base64
from concurrent.futures import ThreadPoolExecutor
import json
import os
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from adapters.jsonl import JsonlPairs
from rules.catalogue import Catalogue, open_catalogue
from shadow import audit
from shadow.config import load_config
from shadow.demo.run import demo_config_text, free_port, reference_pair, stop_processes
from shadow.demo.trace import generate_trace
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into
from shadow.replay import replay
from tests.browser.conftest import ATTRIBUTE_PAYLOAD, SCRIPT_PAYLOAD
from tests.servers import wait_http

TOKEN = "browser-test-token-0123456789"
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "images"
WIDE, NARROW = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@dataclass
class Triage:
    """`shadow ui` running over a filled catalogue."""

    url: str
    workdir: Path
    rules: Path
    catalogue: Catalogue
    visit: float                      # a "last visit" between the reference pairs and the hostile ones
    xss_quirk: str = ""
    seen: list[str] = field(default_factory=list)   # requests to anywhere else, page errors, dialogs


def _hostile_pairs(after: datetime) -> list[Pair]:
    return [Pair(command=Command(kind="update_stop_eta", token=f"xss-{n}", zone="chi", keys={"load_id": f"L-XSS-{n}"},
                                 received_at=after + timedelta(minutes=n), payload={"note": SCRIPT_PAYLOAD}),
                 legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200,
                                state={"instructions": SCRIPT_PAYLOAD}, latency_ms=5),
                 new=Outcome(target=Target.NEW, status=Status.OK, http_status=200,
                             state={"instructions": ATTRIBUTE_PAYLOAD}, latency_ms=4)) for n in range(3)]


@pytest.fixture(scope="module")
def triage_page(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ui")
    with reference_pair(workdir) as (legacy_url, new_url):
        ports = [int(u.rsplit(":", 1)[1]) for u in (legacy_url, new_url)]
        (workdir / "shadow.toml").write_text(demo_config_text(*ports))
        config = load_config(workdir / "shadow.toml")
        with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
            # one at a time: pairs (and so examples) in trace order, and the screenshots the same from run to run
            pool.submit(asyncio.run, replay(generate_trace(600, seed=5), config, JsonlPairs(config.replay.pairs),
                                            concurrency=1)).result()
    catalogue = open_catalogue(config.store.url.reveal())
    compare_into(JsonlPairs(config.replay.pairs), catalogue, rules_folder=config.store.rules)
    # The viewer's last visit: just after the replayed traffic; the hostile pairs come a minute later.
    last_pair = max(q.last_seen for q in catalogue.quirks())
    visit = (last_pair + timedelta(seconds=30)).timestamp()
    compare_into(_hostile_pairs(last_pair + timedelta(minutes=1)), catalogue, rules_folder=config.store.rules)
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "shadow", "ui", "--config", str(workdir / "shadow.toml"), "--port",
                                str(port)], env={**os.environ, "SHADOW_UI_TOKEN": TOKEN},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/", process, within=20)
        found = Triage(url, workdir, config.store.rules, catalogue, visit)
        found.xss_quirk = next(q.id for q in catalogue.quirks() if q.field == "instructions")
        yield found
    finally:
        stop_processes([process])
        catalogue.close()


def _page(browser, site: Triage, viewport=WIDE, *, bypass_csp: bool = False, last_visit: bool = True):
    """A fresh context (no cookies but the last visit) and page that may only talk to the triage page."""
    context = browser.new_context(viewport=viewport, bypass_csp=bypass_csp)
    if last_visit:
        # "previous visit ended at `visit`, this visit is going on now" (see shadow.web.session.Visits)
        context.add_cookies([{"name": "shadow_visit", "value": f"{int(site.visit)}:{int(time.time())}",
                              "url": site.url}])
    page = context.new_page()

    def only_the_page(route) -> None:
        if route.request.url.startswith(site.url + "/"):
            route.continue_()
        else:
            site.seen.append(f"request {route.request.url}")
            route.abort()

    def dialog(d) -> None:
        site.seen.append(f"dialog {d.message}")
        d.dismiss()

    page.route("**/*", only_the_page)
    page.on("dialog", dialog)
    page.on("pageerror", lambda e: site.seen.append(f"page error {e}"))
    page.on("console", lambda m: site.seen.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    return context, page


def _sign_in(page, site: Triage, name: str = "dana") -> None:
    page.goto(site.url + "/signin")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site.url + "/")
    assert "signed in as" in page.locator(".site-head").inner_text()


def _quirk(site: Triage, field_name: str, transition: str):
    return next(q for q in site.catalogue.quirks() if q.field == field_name and q.transition == transition)


# -- reading -------------------------------------------------------------------------------------------------

def test_the_list_filters_and_opens_a_quirk(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    page.goto(triage_page.url + "/")
    total = triage_page.catalogue.count_quirks()
    assert page.locator("table.quirks tbody tr[data-quirk]").count() == total
    assert page.locator("tr.is-new").count() == 1  # the hostile quirk came after the last visit
    assert page.locator("tr.is-new a.quirk-link").inner_text().startswith("values of instructions differ")
    page.get_by_label("Verdict").select_option("noise")
    page.get_by_role("button", name="Filter").click()
    badges = page.locator("table.quirks td.verdict .badge").all_inner_texts()
    assert badges and set(badges) == {"noise"} and len(badges) == triage_page.catalogue.count_quirks(verdict="noise")
    page.get_by_label("Verdict").select_option("")
    page.get_by_label("Search").fill("driver_name trailing")
    page.get_by_label("Zone").select_option("chi")
    page.get_by_role("button", name="Filter").click()
    links = page.locator("a.quirk-link")
    assert links.count() == 1 and links.inner_text() == "legacy pads driver_name with trailing spaces"
    links.click()
    assert page.locator("h1").inner_text().startswith("legacy pads driver_name with trailing spaces")
    assert page.locator(".example .side.legacy pre").first.inner_text().endswith(' "')  # the padding, visible
    page.locator("details.whole summary").first.click()
    assert page.locator("details.whole table.outcomes").first.is_visible()
    context.close()
    assert triage_page.seen == []


def test_the_entity_audit_is_one_click_from_an_example(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    quirk = _quirk(triage_page, "driver_name", "trailing-whitespace")
    page.goto(f"{triage_page.url}/quirks/{quirk.id}")
    link = page.locator(".example .entity a").first
    key = link.inner_text()
    link.click()
    assert page.locator("h1").inner_text() == f"Entity audit: {key.replace(' ', '=', 1)}"
    assert page.locator("article.pair").count() >= 1
    context.close()
    assert triage_page.seen == []


# -- deciding ------------------------------------------------------------------------------------------------

def test_a_post_without_sign_in_or_csrf_token_is_refused(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    quirk = _quirk(triage_page, "zone", "case-only")
    form = {"verdict": "retire", "owner": "mallory", "note": "x"}
    page.goto(triage_page.url + "/")
    assert context.request.post(f"{triage_page.url}/quirks/{quirk.id}/verdict", form=form).status == 403
    _sign_in(page, triage_page)
    assert context.request.post(f"{triage_page.url}/quirks/{quirk.id}/verdict", form=form).status == 403
    wrong = {**form, "csrf": "not-the-token"}
    assert context.request.post(f"{triage_page.url}/quirks/{quirk.id}/verdict", form=wrong).status == 403
    assert triage_page.catalogue.quirk(quirk.id).verdict == "open"
    assert not (triage_page.rules / f"quirk-{quirk.id}.toml").exists()
    context.close()


def test_signing_in_and_deciding_with_the_keyboard_writes_rule_file_catalogue_and_audit(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    quirk = _quirk(triage_page, "driver_name", "trailing-whitespace")
    _sign_in(page, triage_page)
    page.goto(f"{triage_page.url}/?q=driver_name+trailing")
    page.keyboard.press("j")
    focused = page.evaluate("() => document.activeElement.closest('tr').dataset.quirk")
    assert focused == quirk.id
    outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle + ' ' + "
                            "getComputedStyle(document.activeElement).outlineWidth")
    assert outline.split()[0] != "none" and float(outline.split()[1].rstrip("px")) >= 2  # focus is visible
    page.keyboard.press("Enter")
    page.wait_for_url(f"{triage_page.url}/quirks/{quirk.id}*")
    page.keyboard.press("t")                                  # retire; the cursor goes to the note
    assert page.evaluate("() => document.activeElement.id") == "v-note"
    page.keyboard.type("nobody relies on the padding")
    page.get_by_label("Ticket (optional)").fill("DISP-812")
    page.get_by_label("Note: why").press("Enter")            # Enter in the note saves
    page.wait_for_url(f"{triage_page.url}/quirks/{quirk.id}*")
    assert "retire by dana" in page.locator(".flash").inner_text()
    assert page.locator("h1 .badge").inner_text() == "retire"
    assert "open → retire" in page.locator("table.history").inner_text()

    rule = tomllib.loads((triage_page.rules / f"quirk-{quirk.id}.toml").read_text())["quirk"]
    assert (rule["id"], rule["verdict"], rule["owner"], rule["note"], rule["ticket"]) == \
        (quirk.id, "retire", "dana", "nobody relies on the padding", "DISP-812")
    decided = triage_page.catalogue.quirk(quirk.id)
    assert (decided.verdict, decided.owner, decided.ticket) == ("retire", "dana", "DISP-812")
    entry = audit.entries(triage_page.catalogue.engine, subject=f"quirk:{quirk.id}")[-1]
    assert (entry.actor, entry.action, entry.detail["from"], entry.detail["to"]) == ("dana", "verdict", "open", "retire")
    assert page.locator("pre.rule-text").inner_text().count('verdict = "retire"') == 1  # the rule file as it is now
    context.close()
    assert triage_page.seen == []


def test_bulk_triage_from_the_list(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    _sign_in(page, triage_page, "sam")
    page.goto(f"{triage_page.url}/?q=timestamps")
    ids = page.locator("table.quirks tbody tr[data-quirk]").evaluate_all("rows => rows.map(r => r.dataset.quirk)")
    assert len(ids) >= 2
    page.locator("#pick-all").check()                          # "select all" exists once the script runs
    page.get_by_label("Note").fill("timestamps below a second are not compared")
    page.locator("fieldset.bulk label", has_text="noise").click()
    page.get_by_role("button", name="Decide selected").click()
    assert f"{len(ids)} quirk(s): noise by sam" in page.locator(".flash").inner_text()
    for quirk_id in ids:
        assert triage_page.catalogue.quirk(quirk_id).owner == "sam"
        assert (triage_page.rules / f"quirk-{quirk_id}.toml").exists()
    context.close()


def test_a_rule_change_is_previewed_before_it_is_saved(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    quirk = _quirk(triage_page, "zone", "case-only")
    _sign_in(page, triage_page)
    page.goto(f"{triage_page.url}/quirks/{quirk.id}")
    page.get_by_text("Write a rule file").click()
    editor = page.locator("#rule-text")
    assert "# casefold = true" in editor.input_value()        # the suggestion, commented out
    editor.fill(editor.input_value().replace("# [[normalise]]", "[[normalise]]").replace("# path", "path")
                .replace("# casefold", "casefold"))
    page.get_by_role("button", name="Preview against stored pairs").click()
    preview = page.locator(".preview")
    assert int(preview.locator("[data-figure=removed]").inner_text().replace(",", "")) == quirk.differences
    assert quirk.id in preview.locator("table").inner_text() and "closed" in preview.inner_text()
    assert not (triage_page.rules / f"quirk-{quirk.id}.toml").exists()  # a preview writes nothing
    context.close()


# -- what never happens -----------------------------------------------------------------------------------------

def test_hostile_payloads_render_as_inert_text(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page)
    _sign_in(page, triage_page)
    for path in (f"/quirks/{triage_page.xss_quirk}", "/?q=instructions", "/pairs?key=load_id%3DL-XSS-1"):
        page.goto(triage_page.url + path)
        for summary in page.locator("details summary").all():
            summary.click()
        page.wait_for_timeout(100)
        assert page.locator("img").count() == 0, path
        assert page.eval_on_selector_all("script", "s => s.map(e => e.getAttribute('src'))") == ["/static/triage.js"]
    page.goto(f"{triage_page.url}/quirks/{triage_page.xss_quirk}")
    assert page.locator(".example .side.legacy pre").first.inner_text() == json.dumps(SCRIPT_PAYLOAD)
    assert page.locator(".example .side.new pre").first.inner_text() == json.dumps(ATTRIBUTE_PAYLOAD)
    context.close()
    assert triage_page.seen == []  # no dialog, no page error, no CSP complaint, nothing fetched elsewhere


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280px", "390px"])
def test_axe_finds_no_serious_or_critical_violation(browser, triage_page: Triage, viewport) -> None:
    context, page = _page(browser, triage_page, viewport, bypass_csp=True)  # axe is injected as an inline script
    _sign_in(page, triage_page)
    quirk = _quirk(triage_page, "driver_name", "trailing-whitespace")
    for path in ("/", f"/quirks/{quirk.id}"):
        page.goto(triage_page.url + path)
        page.add_script_tag(path=str(AXE))
        result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]
               if v["impact"] in ("serious", "critical")]
        assert bad == [], f"{path} at {viewport['width']} px: {bad}"
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow} px at {viewport['width']} px"
    context.close()


def test_screenshots_are_kept_for_the_readme(browser, triage_page: Triage) -> None:
    context, page = _page(browser, triage_page, {"width": 1280, "height": 860})
    _sign_in(page, triage_page)
    # What is left to decide, newest first. (Noise quirks are left out: their counts depend on the wall clock
    # of the reference services, and the screenshot should only change when the page does.)
    page.goto(triage_page.url + "/?verdict=open&sort=newest")
    _tidy(page)
    DOCS.mkdir(parents=True, exist_ok=True)
    _keep(browser, DOCS / "triage-list.png", page.screenshot(type="png"))
    quirk = _quirk(triage_page, "driver_name", "trailing-whitespace")
    page.set_viewport_size({"width": 1280, "height": 1500})
    page.goto(f"{triage_page.url}/quirks/{quirk.id}?i=0")
    _tidy(page)
    _keep(browser, DOCS / "triage-quirk.png", page.screenshot(type="png"))
    context.close()


def _tidy(page) -> None:
    """No sign-in message, and a catalogue address that does not change with the temporary folder."""
    page.evaluate("""() => { document.querySelectorAll('.flash').forEach(f => f.remove());
                             document.querySelector('.brand code').textContent = 'sqlite:///shadow.db'; }""")


_PIXELS_DIFFERING = """async ([a, b]) => {
    const load = src => new Promise((ok, no) => { const i = new Image(); i.onload = () => ok(i); i.onerror = no;
                                                  i.src = 'data:image/png;base64,' + src; });
    const [x, y] = [await load(a), await load(b)];
    if (x.width !== y.width || x.height !== y.height) return -1;
    const canvas = document.createElement('canvas');
    canvas.width = x.width; canvas.height = x.height;
    const g = canvas.getContext('2d');
    g.drawImage(x, 0, 0); const one = g.getImageData(0, 0, x.width, x.height).data;
    g.clearRect(0, 0, x.width, x.height); g.drawImage(y, 0, 0); const two = g.getImageData(0, 0, x.width, x.height).data;
    let n = 0;
    for (let i = 0; i < one.length; i += 4) {
        if (one[i] !== two[i] || one[i + 1] !== two[i + 1] || one[i + 2] !== two[i + 2]) n++;
    }
    return n;
}"""


def _keep(browser, path: Path, shot: bytes) -> None:
    """Write the screenshot when the page looks different: a few pixels of anti-aliasing that differ between runs
    do not rewrite the file (so running the tests does not dirty the checkout)."""
    assert 10_000 < len(shot) < 600_000
    if path.exists():
        old = path.read_bytes()
        if old == shot:
            return
        blank = browser.new_page()
        try:
            differing = blank.evaluate(_PIXELS_DIFFERING, [base64.b64encode(old).decode(), base64.b64encode(shot).decode()])
        finally:
            blank.close()
        if 0 <= differing < 200:
            return
    path.write_bytes(shot)
