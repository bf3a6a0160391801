"""The HTML report in headless Chromium (Debian's chromium through Playwright): it loads nothing, logs no error,
draws its charts, and shows hostile payloads as text. Keeps a screenshot at docs/images/report.png."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.html import write_html
from reports.query import Report
from tests.browser.conftest import ATTRIBUTE_PAYLOAD, SCRIPT_PAYLOAD

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "report.png"
CHARTS = ("rate-over-time", "differences-per-command", "quirks-per-verdict", "latency", "trend-rates", "trend-quirks")


class Loaded:
    """The report open in a page, and everything the page tried or said."""

    def __init__(self, page, url: str) -> None:
        self.page, self.url = page, url
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []


@pytest.fixture(scope="module")
def loaded(browser, history_report: Report, tmp_path_factory) -> Loaded:
    path = write_html(history_report, tmp_path_factory.mktemp("html") / "report.html")
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    seen = Loaded(page, path.as_uri())

    def only_the_file(route) -> None:
        if route.request.url == seen.url:
            route.continue_()
        else:
            seen.requests.append(route.request.url)
            route.abort()

    def dialog(d) -> None:
        seen.dialogs.append(d.message)
        d.dismiss()

    page.route("**/*", only_the_file)
    page.on("console", lambda m: seen.errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning")
            else None)
    page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
    page.on("dialog", dialog)
    page.goto(seen.url, wait_until="load")
    yield seen
    page.close()


def test_the_report_requests_nothing_and_logs_no_error(loaded: Loaded) -> None:
    loaded.page.wait_for_timeout(200)  # anything deferred (a lazy image, a font) would have asked by now
    assert loaded.requests == []
    assert loaded.errors == []


def test_every_chart_is_drawn_with_its_data_points(loaded: Loaded, history_report: Report) -> None:
    drawn = loaded.page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('svg.chart[data-chart]')]
        .filter(svg => svg.dataset.chart !== 'sparkline').map(svg => {
            const box = svg.getBoundingClientRect();
            const marks = [...svg.querySelectorAll('.mark')];
            const sized = marks.filter(m => { const b = m.getBoundingClientRect(); return b.width > 0 && b.height > 0; });
            return [svg.dataset.chart, {width: box.width, height: box.height, marks: marks.length, sized: sized.length,
                    fill: marks.length ? getComputedStyle(marks[0]).fill : null}];
        }))""")
    assert set(drawn) == set(CHARTS)
    for name, chart in drawn.items():
        assert chart["width"] > 300 and chart["height"] > 100, name
        assert chart["marks"] > 0 and chart["sized"] == chart["marks"], name
        assert chart["fill"] not in (None, "none", "rgb(0, 0, 0)"), f"{name}: the stylesheet did not colour it"
    runs = len(history_report.trend) + 1
    assert drawn["rate-over-time"]["marks"] == sum(1 for p in history_report.timeline if p.pairs)
    assert drawn["differences-per-command"]["marks"] == len(history_report.differences_by_command)
    assert drawn["quirks-per-verdict"]["marks"] == 4
    assert drawn["trend-rates"]["marks"] == 2 * runs
    sparklines = loaded.page.locator("table.quirk-table svg.spark-chart")
    assert sparklines.count() == len(history_report.quirks)


def test_payloads_render_as_text_and_never_run(loaded: Loaded, history_report: Report) -> None:
    page = loaded.page
    assert loaded.dialogs == []
    assert page.locator("img").count() == 0
    assert page.eval_on_selector_all("script", "s => s.map(e => e.type)") == ["application/json"]
    quirk = next(q.quirk for q in history_report.quirks if q.quirk.field == "instructions")
    legacy = page.locator(f"#quirk-{quirk.id} td.value.legacy pre").first.inner_text()
    new = page.locator(f"#quirk-{quirk.id} td.value.new pre").first.inner_text()
    assert legacy == json.dumps(SCRIPT_PAYLOAD) and new == json.dumps(ATTRIBUTE_PAYLOAD)
    data = json.loads(page.locator("#report-data").text_content())
    examples = [e for q in data["quirks"] if q["field"] == "instructions" for e in q["examples"]]
    assert examples and all(e["legacy"] == SCRIPT_PAYLOAD and e["new"] == ATTRIBUTE_PAYLOAD for e in examples)


def test_headline_and_new_quirks_match_the_report(loaded: Loaded, history_report: Report) -> None:
    page = loaded.page
    figure = {name: page.locator(f"[data-figure={name}]").inner_text()
              for name in ("pairs", "matched", "quirks", "new-quirks")}
    assert figure == {"pairs": f"{history_report.overall.pairs:,}", "matched": f"{history_report.overall.matched:,}",
                      "quirks": str(len(history_report.quirks)), "new-quirks": str(len(history_report.new_quirks))}
    assert [q.quirk.field for q in history_report.new_quirks] == ["depot"]
    assert "depot" in page.locator("#new").inner_text()


def test_a_screenshot_is_kept_for_the_readme(loaded: Loaded) -> None:
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shot = loaded.page.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": 1400}, type="png")
    assert len(shot) < 400_000
    if not SCREENSHOT.exists() or SCREENSHOT.read_bytes() != shot:
        SCREENSHOT.write_bytes(shot)
