"""The explorer in a real browser: Playwright for Python driving Debian's chromium
(``/usr/bin/chromium``, installed by ``make deps``; nothing downloads a browser) against
``didban serve`` on loopback.

Over OONI's fixture measurements (no root needed): every page in both languages loads
without a console error, has the right ``dir``, shows what it must, does not overflow a
1,024 px window, and axe-core (vendored in ``vendor/axe-core``) finds no serious or
critical violation; the country page's filter works through htmx. Over a store the lab
filled (root only): the blocked services of the iran-2022 profile are in the grid and a
measurement's failure is highlighted. Screenshots are kept in ``out/screenshots/``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from server_helpers import free_port, start_server, stop
from web_helpers import EVENT, FACEBOOK

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync",
        "--disable-dev-shm-usage"]  # fmt: skip
IR_AUG = "since=2022-08-01&until=2022-09-01"
PAGES = {
    "home": "/",
    "country": f"/country/IR?{IR_AUG}",
    "service": "/service/facebook?since=2022-08-01&until=2022-09-01",
    "event": f"/event/{EVENT}",
    "measurement": f"/m/{FACEBOOK}",
    "timeline": "/timeline/IR?since=2022-09-01&until=2022-10-15",
    "search": "/search?probe_cc=IR&since=2020-01-01",
    "methods": "/methods",
}

if not CHROMIUM.exists():
    pytest.skip(
        f"the browser tests need Debian's chromium at {CHROMIUM} (make deps installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def server(explorer_dir: Path) -> Iterator[str]:
    port = free_port()
    proc = start_server(explorer_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


class Tab:
    """A page with its console errors collected."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def open(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_load_state("networkidle")
        self.page.evaluate("document.fonts.ready")

    def axe(self) -> list[tuple[str, str, Any]]:
        self.page.add_script_tag(path=str(AXE))
        found = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        return [
            (v["id"], v["impact"], v["nodes"][0]["target"])
            for v in found["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        height = min(self.page.evaluate("document.documentElement.scrollHeight"), 2400)
        clip = {"x": 0, "y": 0, "width": 1024, "height": height}
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, clip=clip)


@pytest.fixture
def tab(browser: Browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1024, "height": 800})
    try:
        yield Tab(context.new_page())
    finally:
        context.close()


@pytest.mark.parametrize("name", PAGES)
@pytest.mark.parametrize("lang", ["en", "fa"])
def test_page_loads_clean_accessible_and_fits(server: str, tab: Tab, name: str, lang: str) -> None:
    path = PAGES[name] if lang == "en" else "/fa" + PAGES[name]
    tab.open(server + path)
    page = tab.page
    assert page.evaluate("document.documentElement.dir") == ("rtl" if lang == "fa" else "ltr")
    assert page.evaluate("document.documentElement.lang") == lang
    assert tab.errors == []
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 1024, f"{path} is {overflow} px wide"
    assert tab.axe() == []
    tab.shot(f"{name}-{lang}")


def test_pages_show_what_they_must(server: str, tab: Tab) -> None:
    page = tab.page
    tab.open(f"{server}/country/IR?{IR_AUG}")
    cell = page.locator("tr", has=page.locator("a", has_text="Facebook")).locator("td.blocked a")
    assert cell.count() == 1 and "dns.hijack" in (cell.get_attribute("title") or "")
    tab.open(f"{server}/event/{EVENT}")
    assert page.get_by_text("Onset and resolution brackets").is_visible()
    assert page.get_by_text("[20 Sep 2022").count() == 1
    tab.open(f"{server}/m/{FACEBOOK}")
    row = page.locator("tr.evidence", has_text="GET https://www.facebook.com/")
    assert row.is_visible() and "generic_timeout_error" in row.inner_text()
    color = row.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert color == "rgb(255, 243, 176)"  # the failing request, highlighted in place
    assert page.locator("tr.context", has_text="connect 10.10.34.36:443").count() == 1
    assert tab.errors == []


def test_the_country_filter_swaps_the_results_and_the_url(server: str, tab: Tab) -> None:
    page = tab.page
    tab.open(f"{server}/country/IR?{IR_AUG}")
    assert page.locator("#results td.blocked").count() == 1
    field = page.locator("input[name=probe_asn]")
    field.fill("AS1")
    field.dispatch_event("change")
    page.wait_for_url("**probe_asn=AS1**")
    page.wait_for_function("document.querySelectorAll('#results td.blocked').length === 0")
    field.fill("AS197207")
    field.dispatch_event("change")
    page.wait_for_url("**probe_asn=AS197207**")
    page.wait_for_function("document.querySelectorAll('#results td.blocked').length === 1")
    assert tab.errors == []
    tab.shot("country-filtered-en")


# Where a piece of text is drawn: the box of the first occurrence of ``needle`` in an
# element (``[left, right, top]``).
TEXT_BOX = """(root, needle) => {
  const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  for (let node = walk.nextNode(); node; node = walk.nextNode()) {
    const at = node.data.indexOf(needle);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + needle.length);
    const box = range.getBoundingClientRect();
    return [box.left, box.right, box.top];
  }
  return null;
}"""


def test_a_farsi_date_keeps_its_order_beside_latin_text(server: str, tab: Tab) -> None:
    """The measurement's header line (test, network, AS name, then the time) in Farsi:
    the day stays beside its month (Persian digits are numbers to the bidi algorithm,
    which pulled the day into the Latin run before it, to the far end of the line), and
    the Gregorian date reads year-month-day from the left, as ISO 8601 does."""
    tab.open(f"{server}/fa/m/{FACEBOOK}")  # 2022-08-15 19:01 UTC: 24 Mordad 1401

    def box(needle: str) -> list[float]:
        found = tab.page.locator("p.meta").evaluate(TEXT_BOX, needle)
        assert found, needle
        return list(found)

    day, month = box("۲۴"), box("مرداد")
    assert day[2] == month[2]  # one line
    assert 0 < day[0] - month[1] < 12, (day, month)  # the day, just right of its month
    year, month_day = box("۲۰۲۲"), box("۰۸-۱۵")
    assert year[2] == month_day[2] and year[1] <= month_day[0]
    assert tab.errors == []


def test_the_chart_axes_speak_the_pages_language_in_utc_days(server: str, browser: Browser) -> None:
    """The uPlot chart's tick labels (drawn on a canvas: read from the chart uPlot keeps
    on its element): Persian digits and Solar Hijri days in Farsi; days of UTC, as the
    page's own, for a reader whose clock is eight hours behind."""
    context = browser.new_context(
        viewport={"width": 1024, "height": 800}, timezone_id="America/Los_Angeles"
    )
    try:
        tab = Tab(context.new_page())
        read = "document.querySelector('[data-series]').chart.axes.map(a => a._values)"
        tab.open(f"{server}/country/IR?{IR_AUG}")
        days, volume, share = tab.page.evaluate(read)
        assert days[0] == "1 Aug" and "31 Jul" not in days
        assert share[-1] == "100%"
        tab.open(f"{server}/fa/country/IR?{IR_AUG}")
        days, volume, share = tab.page.evaluate(read)
        assert days[0] == "۱۰ مرداد"  # 2022-08-01
        labels = " ".join(days + volume + share)
        assert re.search("[۰-۹]", labels) and not re.search("[0-9]", labels), labels
        assert share[-1] == "۱۰۰٪"
        assert tab.errors == []
    finally:
        context.close()


def test_a_farsi_list_of_blocked_services_reads_from_the_right(tmp_path: Path, tab: Tab) -> None:
    """The home page's blocked services of a country, in Farsi: each service with its
    method after it (to its left), the first service rightmost. Latin names with the
    commas between them made one left-to-right run: the first name drawn leftmost, its
    method to its right."""
    from analysis_builders import ctrl, jsonl, q, web

    from didban.store import rollups
    from didban.store.ingest import ingest
    from didban.store.store import Store

    src = tmp_path / "m.jsonl"
    src.write_bytes(
        jsonl(
            *(
                web(f"https://www.{site}.com/", queries=[q(f"www.{site}.com", ["10.10.34.35"])],
                    control=ctrl(["157.240.1.174"]))
                for site in ("facebook", "instagram", "youtube")
            )
        )
    )  # fmt: skip
    with Store(tmp_path / "data") as store:
        ingest(store, [src])
        rollups.refresh(store)
    port = free_port()
    proc = start_server(tmp_path / "data", port)
    try:
        tab.open(f"http://127.0.0.1:{port}/fa/")
        cell = tab.page.locator("tr", has=tab.page.locator("th a", has_text="ایران")).locator("td")
        boxes = []
        for name in ("Facebook", "Instagram", "YouTube"):
            link = cell.last.get_by_role("link", name=name)
            method = cell.last.locator("code").nth(len(boxes))
            boxes.append((link.bounding_box(), method.bounding_box()))
        for link, method in boxes:
            assert link and method and method["x"] + method["width"] <= link["x"]
        firsts = [link["x"] for link, _ in boxes if link]
        assert firsts == sorted(firsts, reverse=True), firsts  # one line, from the right
        assert tab.errors == []
    finally:
        stop(proc)


def test_the_timelines_bars_say_what_they_are_and_when(server: str, tab: Tab) -> None:
    """Each bar of the timeline is labelled on the page (not only on hover) and the axis
    under them is dated; a known event without a recorded end is not called ongoing."""
    page = tab.page
    tab.open(f"{server}{PAGES['timeline']}")
    label = page.locator(".bars em.label", has_text="block instagram tls.sni.reset")
    box = label.bounding_box()
    assert label.is_visible() and box and box["x"] >= 0 and box["x"] + box["width"] <= 1024
    assert page.locator(".bars em.label", has_text="Instagram blocked").is_visible()
    ticks = page.locator(".bars .axis span").all_inner_texts()
    assert ticks[0] == "2022-09-02" and 3 <= len(ticks) <= 8, ticks
    detected = page.locator("tbody tr", has_text="block instagram tls.sni.reset")
    assert "ongoing" in detected.inner_text()
    known = page.locator("tbody tr", has=page.get_by_text("Instagram blocked", exact=True))
    assert "not recorded" in known.inner_text() and "ongoing" not in known.inner_text()
    tab.open(f"{server}/fa{PAGES['timeline']}")
    assert page.locator(".bars .axis span").first.inner_text() == "۲۰۲۲-۰۹-۰۲"
    assert tab.errors == []


def test_a_method_name_is_never_broken_across_lines(server: str, tab: Tab) -> None:
    """Every measurement of the store in the search table, 1,024 px wide: a method in its
    column is on one line (it was cut anywhere: 'circumvention.bootstr' + 'ap'); and a
    failure string in a measurement's steps ('generic_timeout_err' + 'or')."""
    tab.open(f"{server}/search?since=2015-01-01")
    methods = tab.page.locator("tbody tr td:last-child code")
    assert methods.count() >= 5
    lines = methods.evaluate_all("cs => cs.map(c => [c.textContent, c.getClientRects().length])")
    assert [name for name, n in lines if n != 1] == []
    assert tab.page.evaluate("document.documentElement.scrollWidth") <= 1024
    # nor a failure string of a measurement's steps, but at its spaces
    tab.open(f"{server}/m/20231130174134.000000_IT_webconnectivity_d708977f7c14f349")
    failures = tab.page.locator("td.failure code")
    assert failures.count() >= 5
    lines = failures.evaluate_all("cs => cs.map(c => [c.textContent, c.getClientRects().length])")
    assert [name for name, n in lines if n != 1 and " " not in name] == []
    assert tab.page.evaluate("document.documentElement.scrollWidth") <= 1024


@pytest.mark.parametrize("lang", ["en", "fa"])
def test_the_country_pages_days_run_one_way(server: str, tab: Tab, lang: str) -> None:
    """The grid of services by day, the strip and the chart under it: the first day of
    the window on the same side (in Farsi the grid ran right to left, the strip, the
    chart and the calendar left to right)."""
    tab.open(f"{server}{'/fa' if lang == 'fa' else ''}/country/IR?{IR_AUG}")
    page = tab.page

    def xs(selector: str) -> tuple[float, float]:
        boxes = page.locator(selector)
        first, last = boxes.first.bounding_box(), boxes.last.bounding_box()
        assert first and last
        return first["x"], last["x"]

    grid_first, grid_last = xs("table.grid thead th")
    strip_first, strip_last = xs(".strip div")
    assert page.locator("table.grid thead th").count() == page.locator(".strip div").count()
    assert grid_first < grid_last and strip_first < strip_last
    assert tab.errors == []


def test_a_refused_filter_says_why_in_place(server: str, tab: Tab) -> None:
    """A filter the page refuses (a start after the end) swaps in the one sentence, not
    a second page with its own header and footer inside the first."""
    page = tab.page
    tab.open(f"{server}/fa/country/IR?{IR_AUG}")
    field = page.locator("input[name=since]")
    field.fill("2022-09-05")
    field.dispatch_event("change")
    page.wait_for_url("**since=2022-09-05**")
    alert = page.locator("#results [role=alert]")
    alert.wait_for()
    assert "since must not be after until" in alert.inner_text()
    assert "این صفحه نمایش داده نمی‌شود" in alert.inner_text()
    assert page.locator("header.site").count() == 1 and page.locator("footer.site").count() == 1
    assert page.locator("form.filters").count() == 1  # the filters stay, to be corrected


def test_a_farsi_evidence_line_keeps_each_label_beside_its_value(server: str, tab: Tab) -> None:
    """An evidence line (left to right: a JSON pointer, the rule's English words) with its
    Farsi labels: each value follows its label, as the line reads. The two Farsi labels
    and the neutral text between them made one right-to-left run, which drew 'expected'
    beside the observed value and its own value at the other end."""
    tab.open(f"{server}/fa/m/{FACEBOOK}")
    line = tab.page.locator("summary", has_text="/test_keys/queries/0")
    label = line.evaluate(TEXT_BOX, "مورد انتظار")
    value = line.evaluate(TEXT_BOX, "157.240.192.35")
    assert label and value
    assert abs(label[2] - value[2]) < 8  # one line
    assert 0 <= value[0] - label[1] < 15, (label, value)  # the value follows its label


@pytest.mark.lab
def test_a_store_the_lab_filled_shows_its_blocks(
    tmp_path: Path, tab: Tab, browser: Browser
) -> None:
    from didban.lab import runtime

    desc = runtime.up("iran-2022", control=True, make_current=False)
    try:
        lab_json = Path(desc.state_dir) / "lab.json"
        out = tmp_path / "m.jsonl"
        env = {**os.environ, "DIDBAN_LAB": str(lab_json)}
        run = subprocess.run(
            [sys.executable, "-m", "didban.cli", "run", "--lab", "--accept-risk",
             "--no-progress", "--output", str(out)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert out.exists(), run.stderr[-2000:]
        loaded = subprocess.run(
            [sys.executable, "-m", "didban.cli", "ingest", str(out), "--data-dir",
             str(tmp_path / "data"), "--lab", str(lab_json)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert loaded.returncode == 0, loaded.stderr[-2000:]
    finally:
        runtime.down(desc.state_dir)
    port = free_port()
    proc = start_server(tmp_path / "data", port)
    try:
        page = tab.page
        tab.open(f"http://127.0.0.1:{port}/country/IR")
        blocked = page.locator("table.grid tr", has=page.locator("td.blocked"))
        names = blocked.locator("th").all_inner_texts()
        assert "Instagram" in names and "Telegram" in names, names
        assert page.get_by_role("heading", name="Current blocks").count() == 1
        page.locator("table.grid tr", has_text="Instagram").locator("td.blocked a").first.click()
        page.wait_for_load_state("networkidle")
        page.locator("tbody a").first.click()  # the first measurement of that day
        page.wait_for_load_state("networkidle")
        assert page.locator("tr.evidence").count() >= 1
        assert page.get_by_text("Lab measurement, not a real network.").is_visible()
        assert tab.errors == [] and tab.axe() == []
        tab.shot("lab-measurement-en")
    finally:
        stop(proc)


@pytest.mark.parametrize("lang", ["en", "fa"])
def test_the_report_fits_1024_px_and_is_accessible(tmp_path: Path, tab: Tab, lang: str) -> None:
    from analysis_builders import blocked_instagram, jsonl, ok_page
    from typer.testing import CliRunner

    from didban.cli import app

    lab = blocked_instagram()
    lab["annotations"] = {"x_didban_lab_profile": "iran-2022"}
    src = tmp_path / "m.jsonl"
    src.write_bytes(jsonl(lab, ok_page(), blocked_instagram()))
    out = tmp_path / "report.html"
    args = ["report", "-i", str(src), "-o", str(out), "--lang", lang]
    assert CliRunner().invoke(app, args).exit_code == 0
    tab.open(out.as_uri())
    page = tab.page
    assert page.evaluate("document.documentElement.dir") == ("rtl" if lang == "fa" else "ltr")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1024
    assert page.locator("details[open]").count() == 0  # evidence collapsed
    assert tab.errors == [] and tab.axe() == []
    tab.shot(f"report-{lang}")
