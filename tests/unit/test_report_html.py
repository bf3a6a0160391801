"""The HTML report without a browser: payloads escaped everywhere, nothing referenced outside the file, exact counts."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from markupsafe import escape

from reports.html import render_html, render_value, value_diff, write_html
from reports.query import Report, Scope, build_report
from rules.catalogue import Catalogue
from shadow.model import Command, Outcome, Pair, Status, Target
from shadow.pipeline import compare_into

BASE = datetime(2026, 11, 2, 11, 0, tzinfo=timezone.utc)
SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
LINK = "http://evil.example/x.js"
KEY = "<i>k</i>"


def pair(token: str, kind: str, zone: str, legacy: dict, new: dict, minute: int) -> Pair:
    return Pair(
        command=Command(kind=kind, token=token, zone=zone, keys={"load_id": token},
                        received_at=BASE + timedelta(minutes=minute)),
        legacy=Outcome(target=Target.LEGACY, status=Status.OK, http_status=200, state=legacy, latency_ms=8.0),
        new=Outcome(target=Target.NEW, status=Status.OK, http_status=200, state=new, latency_ms=4.0),
    )


def hostile_report(catalogue: Catalogue) -> Report:
    """Ten pairs, four of them different; the differences carry markup, a URL and a hostile key and zone."""
    pairs = [pair(f"m{i}", "assign_load", "chi", {"a": 1}, {"a": 1}, i) for i in range(4)]
    pairs += [pair(f"c{i}", "cancel_load", "nyc", {"a": 1}, {"a": 1}, 10 + i) for i in range(2)]
    pairs += [pair(f"x{i}", "assign_load", ATTRIBUTE, {"note": SCRIPT, KEY: 1}, {"note": ATTRIBUTE, KEY: 2}, 70 + i)
              for i in range(2)]
    pairs += [pair(f"u{i}", "cancel_load", "nyc", {"url": LINK}, {"url": LINK + " "}, 80 + i) for i in range(2)]
    compare_into(pairs, catalogue, detect_noise=False)
    return build_report(catalogue, Scope())


class Page(HTMLParser):
    """Every tag's attributes, every text node, and the contents of script and style elements."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self._in: str | None = None

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in = tag if tag in self.raw else None

    def handle_endtag(self, tag) -> None:
        self._in = None

    def handle_data(self, data) -> None:
        (self.raw[self._in] if self._in else self.text).append(data)


def parse(page: str) -> Page:
    parsed = Page()
    parsed.feed(page)
    return parsed


def test_payload_values_render_as_text_and_never_as_markup(catalogue: Catalogue) -> None:
    page = render_html(hostile_report(catalogue))
    for raw in (SCRIPT, "<img", KEY):
        assert raw not in page
    parsed = parse(page)
    assert [tag for tag, _a in parsed.tags if tag in ("img", "i", "iframe", "object", "embed")] == []
    assert [a.get("type") for tag, a in parsed.tags if tag == "script"] == ["application/json"]
    assert len(re.findall(r"</script", page, re.IGNORECASE)) == 1
    text = "".join(parsed.text)
    assert json.dumps(SCRIPT) in text and json.dumps(ATTRIBUTE) in text
    assert ATTRIBUTE in text  # the zone, in the per-zone table
    assert f"state[\"{KEY}\"]" in text  # the path of the hostile key


def test_the_data_block_round_trips_and_cannot_close_its_script_tag(catalogue: Catalogue) -> None:
    report = hostile_report(catalogue)
    page = render_html(report)
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    assert "<" not in block and ">" not in block and "&" not in block
    data = json.loads(block)
    assert data["overall"] == report.overall.to_dict()
    notes = {(e["legacy"], e["new"]) for q in data["quirks"] if q["field"] == "note" for e in q["examples"]}
    assert notes == {(SCRIPT, ATTRIBUTE)}


def test_the_page_references_nothing_outside_itself(catalogue: Catalogue) -> None:
    page = render_html(hostile_report(catalogue))
    parsed = parse(page)
    for tag, attributes in parsed.tags:
        for name, value in attributes.items():
            assert name not in ("src", "srcset", "action", "formaction", "poster", "background", "ping"), tag
            if name == "href":
                assert value.startswith("#") or value == "data:,", value
            assert "http:" not in (value or "") and "https:" not in (value or ""), (tag, name)
    style = "".join(parsed.raw["style"])
    assert "url(" not in style and "@import" not in style and "@font-face" not in style
    assert "default-src 'none'" in page  # and the Content-Security-Policy forbids any request or script anyway
    # the only addresses on the page are the payload's, shown as text
    assert set(re.findall(r"https?://[^\s\"'<>&\\]+", "".join(parsed.text))) == {LINK}
    outside_payloads = html.unescape(page).replace(LINK, "")
    assert "http://" not in outside_payloads and "https://" not in outside_payloads


def test_the_page_shows_the_exact_counts(catalogue: Catalogue) -> None:
    report = hostile_report(catalogue)
    page = render_html(report)
    assert 'data-figure="pairs">10<' in page and 'data-figure="matched">6<' in page
    assert 'data-figure="match-rate">60.00%<' in page
    assert '<th scope="row">assign_load</th><td>6</td><td>4</td>' in page
    assert '<th scope="row">cancel_load</th><td>4</td><td>2</td>' in page
    assert '<th scope="row">chi</th><td>4</td><td>4</td>' in page
    assert f'<th scope="row">{escape(ATTRIBUTE)}</th><td>2</td><td>0</td>' in page
    assert f'data-verdict="open">{len(report.quirks)}<' in page and 'data-verdict="retire">0<' in page
    assert 'data-figure="quirks">3<' in page  # note, the hostile key, url
    legacy = report.latency["legacy"]
    assert f"<td>{legacy.p50:,.1f}</td><td>{legacy.p95:,.1f}</td><td>{legacy.p99:,.1f}</td>" in page
    assert "first report of this scope" in page
    assert "2026-11-02 11:00 – 2026-11-02 13:00 UTC" in page and "(2 hours)" in page


def test_an_empty_catalogue_renders_a_page_that_says_so(catalogue: Catalogue) -> None:
    page = render_html(build_report(catalogue, Scope(zone="chi")))
    assert "no pairs in scope" in page and 'data-figure="pairs">0<' in page
    assert "zone chi" in page
    assert 'data-points="0"' in page


def test_charts_carry_one_mark_per_data_point(catalogue: Catalogue) -> None:
    report = hostile_report(catalogue)
    page = render_html(report)
    points = dict(re.findall(r'data-chart="([a-z-]+)" data-points="(\d+)"', page))
    assert points["rate-over-time"] == str(len(report.timeline)) == "2"
    assert points["differences-per-command"] == "2"
    assert points["quirks-per-verdict"] == "4"
    assert points["trend-rates"] == "2"  # this report: its match rate and its accepted rate


def test_write_html_makes_the_folder_and_returns_the_file(catalogue: Catalogue, tmp_path: Path) -> None:
    written = write_html(hostile_report(catalogue), tmp_path / "out" / "report.html")
    assert written == tmp_path / "out" / "report.html"
    assert written.read_text(encoding="utf-8").startswith("<!doctype html>")


def test_only_the_differing_characters_are_marked() -> None:
    left, right = value_diff(render_value("Ann   "), render_value("Ann"))
    assert left == '&#34;Ann<del class="diff"><span class="ws">   </span></del>&#34;' and right == "&#34;Ann&#34;"
    left, right = value_diff(render_value("2026-11-02T10:00:00"), render_value("2026-11-02T15:00:00Z"))
    assert '<del class="diff">0</del>' in left and '<ins class="diff">5</ins>' in right
    assert '<ins class="diff">Z</ins>' in right
    left, right = value_diff(render_value(SCRIPT), render_value(ATTRIBUTE))
    assert "<script" not in left and "<img" not in right and "&lt;script&gt;" in left


def test_an_invisible_character_is_shown_with_its_name() -> None:
    left, _right = value_diff(render_value("Zoë\u00a0Ng"), render_value("Zoë Ng"))
    assert 'title="U+00A0 NO-BREAK SPACE"' in left


def _text_of(marked: str) -> str:
    return html.unescape(re.sub(r"</?(del|ins|span)[^>]*>", "", marked))


@given(st.text(max_size=40), st.text(max_size=40))
def test_marking_differences_never_changes_the_text(a: str, b: str) -> None:
    left, right = value_diff(render_value(a), render_value(b))
    assert _text_of(left) == render_value(a) and _text_of(right) == render_value(b)
    assert "<" not in re.sub(r"</?(del|ins|span)[^>]*>", "", left + right)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=8),
       st.recursive(st.none() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3), max_leaves=8))
def test_marking_structured_values_never_changes_the_text(a, b) -> None:
    left, right = value_diff(render_value(a), render_value(b))
    assert _text_of(left) == render_value(a) and _text_of(right) == render_value(b)
