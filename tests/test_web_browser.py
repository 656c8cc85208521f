"""The web app in a real browser: axe-core on every page, a keyboard-only walk, the README screenshots.

A real ``watchdog demo --serve`` process serves the demo municipality on 127.0.0.1; Debian's
Chromium (through Playwright, never Playwright's own browser download) opens every page with the
page's own Content-Security-Policy in force. axe-core (npm ``axe-core``, vendored under
``tests/vendor/``) runs through the DevTools protocol, which a page's CSP does not govern, and the
test fails on any violation of the WCAG 2.0/2.1 A and AA rules. Skipped only when Chromium is absent.

``WATCHDOG_SCREENSHOTS=docs/screenshots`` writes the README's screenshots there (else to a temp folder).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from web_support import _printed, demo_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium package")]
AXE = Path(__file__).parent / "vendor" / "axe-4.14.1.min.js"
WCAG = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _page(browser):
    context = browser.new_context(locale="da-DK", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.csp_errors = []
    page.on("console", lambda m: page.csp_errors.append(m.text)
            if "Content Security Policy" in m.text else None)
    return page


def _sign_in(page, base: str, ext_id: str) -> None:
    page.goto(base + "/logind")
    page.select_option("#medarbejder", ext_id)
    page.click("button[type=submit]:has-text('Log ind')")
    page.wait_for_load_state()


def _axe(page) -> list[dict]:
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;true")
    result = page.evaluate("opts => axe.run(document, opts)", {"runOnly": {"type": "tag", "values": WCAG}})
    return [{"id": v["id"], "help": v["help"], "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result["violations"]]


def _sign_ins(proc_output: str) -> dict[str, str]:
    return {role: ext_id for role, ext_id in re.findall(r"^\s+(\S+)\s+(W\d+)\s", proc_output, re.MULTILINE)}


def test_axe_finds_no_violation_on_any_page_with_the_demo_data(demo_server, browser):
    base, proc = demo_server
    roles = _sign_ins(_printed(proc))
    pages = {
        "rådgiver": ["/frister", "/frister?fra=31-02-2026&pligt=plan", "/team"],
        "teamleder": ["/team", "/barometer", "/sagstal"],
        "afdelingsleder": ["/team", "/team/T1", "/barometer?fra=01-01-2026&til=23-11-2026",
                           "/barometer?fra=banan", "/sagstal?team=T2"],
        "it-drift": ["/drift", "/adgangslog", "/adgangslog?fra=99-99-2026"],
    }
    found: dict[str, list] = {}
    anonymous = _page(browser)
    anonymous.goto(base + "/logind")
    found["/logind"] = _axe(anonymous)
    visited = 0
    for role, paths in pages.items():
        page = _page(browser)
        _sign_in(page, base, roles[role])
        for path in paths:
            page.goto(base + path)
            found[f"{role} {path}"] = _axe(page)
            visited += 1
        if role == "rådgiver":
            # A case page and another caseworker's list, reached by links as a reader would.
            page.goto(base + "/frister")
            href = page.get_attribute("a[href^='/sag/']", "href")
            page.goto(base + href)
            found[f"{role} {href}"] = _axe(page)
            # The htmx update of the list (the filter form), checked after the swap.
            page.goto(base + "/frister")
            page.select_option("#pligt", "follow_up")
            page.click("form.filters button[type=submit]")
            page.wait_for_url(re.compile(r"pligt=follow_up"))
            page.wait_for_load_state("networkidle")
            found[f"{role} /frister (htmx)"] = _axe(page)
        assert not page.csp_errors, page.csp_errors
        page.context.close()
    anonymous.context.close()
    problems = {where: v for where, v in found.items() if v}
    # The check can fail: an image without a text alternative is found on the same page.
    anonymous = _page(browser)
    anonymous.goto(base + "/logind")
    anonymous.evaluate("document.querySelector('main').appendChild(document.createElement('img'))")
    assert "image-alt" in {v["id"] for v in _axe(anonymous)}
    anonymous.context.close()
    assert visited >= 12
    assert not problems, problems


def test_the_filter_updates_only_the_list_through_htmx_under_the_strict_csp(demo_server, browser):
    base, proc = demo_server
    page = _page(browser)
    _sign_in(page, base, _sign_ins(_printed(proc))["rådgiver"])
    page.goto(base + "/frister")
    page.evaluate("document.querySelector('h1').dataset.marker = 'kept'")
    page.select_option("#pligt", "follow_up")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"pligt=follow_up"))
    page.wait_for_load_state("networkidle")
    # The same document (htmx swapped the list in place), with the URL a reader can bookmark.
    assert page.evaluate("document.querySelector('h1').dataset.marker") == "kept"
    assert page.get_attribute("#resultater", "aria-live") == "polite"
    assert not page.csp_errors, page.csp_errors
    page.context.close()


def test_keyboard_only_from_sign_in_to_a_case_page(demo_server, browser):
    base, proc = demo_server
    page = _page(browser)
    page.goto(base + "/logind")

    def focused() -> dict:
        return page.evaluate("""() => { const e = document.activeElement; const s = getComputedStyle(e);
            return {tag: e.tagName, id: e.id, text: (e.innerText || '').trim(), href: e.getAttribute('href'),
                    outline: s.outlineStyle, shadow: s.boxShadow}; }""")

    page.keyboard.press("Tab")
    first = focused()
    assert first["text"] == "Gå til indhold" and first["outline"] != "none"  # the skip link, visibly focused
    page.keyboard.press("Enter")
    assert focused()["id"] == "indhold"
    for _ in range(10):
        page.keyboard.press("Tab")
        if focused()["id"] == "medarbejder":
            break
    assert focused()["id"] == "medarbejder"
    page.keyboard.press("Tab")
    assert focused()["text"] == "Log ind"
    page.keyboard.press("Enter")  # signs in as the first caseworker in the list
    page.wait_for_url(re.compile(r"/frister$"))
    for _ in range(80):
        page.keyboard.press("Tab")
        now = focused()
        assert now["outline"] != "none" or now["shadow"] != "none", now  # focus is always visible
        if (now["href"] or "").startswith("/sag/"):
            break
    assert (focused()["href"] or "").startswith("/sag/"), "no case link reachable by Tab"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/sag/"))
    assert page.inner_text("h1").startswith("Sag ")
    assert not page.csp_errors, page.csp_errors
    page.context.close()


def test_screenshots_of_the_team_page_and_mine_frister_for_the_readme(demo_server, browser, tmp_path):
    base, proc = demo_server
    roles = _sign_ins(_printed(proc))
    folder = Path(os.environ.get("WATCHDOG_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    for role, path, name in (("teamleder", "/team", "web-team.png"), ("rådgiver", "/frister", "web-mine-frister.png")):
        page = _page(browser)
        _sign_in(page, base, roles[role])
        page.goto(base + path)
        page.screenshot(path=str(folder / name), full_page=False)
        assert (folder / name).stat().st_size > 10_000
        page.context.close()


def test_the_api_docs_render_in_the_browser_with_nothing_fetched_from_outside(demo_server, browser):
    """/docs and /redoc work on a network that reaches only the service: the browser sends nothing
    outside it (the ReDoc bundle's footer logo on cdn.redoc.ly is held back by the docs pages' own
    CSP, which Chromium reports as a request blocked before it left), and both pages still render
    the API's operations."""
    base, _ = demo_server
    page = _page(browser)
    requested, blocked = [], set()
    page.on("request", lambda r: requested.append(r.url))
    page.on("requestfailed", lambda r: blocked.add(r.url) if "csp" in (r.failure or "").lower() else None)
    page.goto(base + "/redoc")
    page.get_by_text("/v1/cases").first.wait_for(timeout=30_000)
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    sent_outside = [u for u in requested if not u.startswith((base + "/", "data:", "blob:")) and u not in blocked]
    assert requested and sent_outside == [], sent_outside
    page.context.close()
