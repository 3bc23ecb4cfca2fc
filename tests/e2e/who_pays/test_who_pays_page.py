"""End to end in a real browser: the who-pays page (GET /who-pays?region=CODE, issue 11 item 5)
in Debian's headless Chromium, driven by Playwright, over the demo's data
(deploy/local/demo_who_pays.py). Kabupaten Serdang Bedagai shows its 23 OPDs without covered
staff, and 22 on the open page once one of them pays for a staff member; Kota Tanjungbalai
shows its programme (quota 690, enrolled 690, paid 345) and its agents. The page drills from
Sumatera Utara to a regency by its own links without a reload, speaks Bahasa Indonesia by
default and English on request, does not scroll sideways on a 390 px phone, and flags the
agents to be dropped once months pass without a new participant. Screenshots go to
.run/artifacts/."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import httpx
import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from deploy.local import demo_who_pays
from shared.clock import WIB
from tests.e2e.conftest import ARTIFACTS, AUTH, PHONE, TIMEOUT_MS, WIDE, id_number, text_becomes
from tests.e2e.who_pays.conftest import Demo

pytestmark = pytest.mark.e2e

COUNTING_MS = 90_000  # the coverage workers count the seeded workers asynchronously
NORTH_SUMATRA = "12"
SERDANG_BEDAGAI = demo_who_pays.SERDANG_BEDAGAI
TANJUNGBALAI = demo_who_pays.TANJUNGBALAI
OPD_WITHOUT_COVERED = len(demo_who_pays.OPD_NAMES) - len(demo_who_pays.OPD_COVERED)  # 23


def cover_a_staff_member(demo: Demo) -> str:
    """One non-ASN staff member of an OPD of Serdang Bedagai with none covered, registered and
    paid for by the OPD: the OPD it was."""
    running = demo.stack
    answer = httpx.get(f"{running.url('coverage')}/v1/coverage/employers", timeout=10, params={
        "region": SERDANG_BEDAGAI, "kind": "opd", "covered": "none"})
    assert answer.status_code == 200, answer.text
    opd = answer.json()["employers"][0]["employer_id"]
    rng, result = random.Random(77), demo_who_pays.WhoPays()
    village = demo_who_pays.villages_of(SERDANG_BEDAGAI, demo.villages)[0]
    staff = demo_who_pays.worker(village, rng, date.today(), segment="PU", employer_id=opd,
                                 occupation="tenaga non-ASN", monthly_income=2_800_000,
                                 channel="employer")
    with httpx.Client(headers=AUTH, timeout=60) as http:
        ids = demo_who_pays.register(http, running.url("registration"), [staff], result)
        paid = demo_who_pays.pay(http, running.url("contributions"), list(ids.values()), rng,
                                 result, payer="employer")
    assert paid == 1 and not result.problems, result.problems
    return opd


def shown(page: Page, code: str) -> None:
    """Until the page shows the region and its figures."""
    page.wait_for_selector(f'body[data-region="{code}"][data-loaded="1"]', timeout=TIMEOUT_MS)


def rows_become(page: Page, selector: str, count: int, at_least: bool = False) -> None:
    check = "n >= c" if at_least else "n === c"
    try:
        page.wait_for_function(
            f"([s, c]) => {{ const n = document.querySelectorAll(s).length; return {check}; }}",
            arg=[selector, count], timeout=TIMEOUT_MS)
    except PlaywrightTimeout as error:
        found = len(page.query_selector_all(selector))
        raise AssertionError(f"{found} {selector}, not {count}") from error


def no_sideways_scroll(page: Page, what: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{what} scrolls sideways at 390 px: {width} px wide"


def tanjungbalais_programme(page: Page) -> None:
    """The city's programme card: quota 690, all enrolled, half paid this month."""
    try:
        found = page.wait_for_function(
            """() => [...document.querySelectorAll("#p-list .prog")]
                 .find(c => c.querySelector(".pname").textContent.includes("Tanjungbalai"))
                 ?.dataset.id""", timeout=TIMEOUT_MS)
    except PlaywrightTimeout as error:
        raise AssertionError("no programme of Tanjungbalai on the page") from error
    card = f'#p-list .prog[data-id="{found.json_value()}"]'
    text_becomes(page, f'{card} [data-k="quota"]', id_number(690))
    text_becomes(page, f'{card} [data-k="enrolled"]', id_number(690), COUNTING_MS)
    text_becomes(page, f'{card} [data-k="paid"]', id_number(345), COUNTING_MS)
    text_becomes(page, f'{card} [data-k="not_paid"]', id_number(345))
    text_becomes(page, f'{card} [data-k="fill_pct"]', "100,0%")
    text_becomes(page, f'{card} [data-k="paid_pct"]', "50,0%")


def test_who_pays_drills_from_a_province_to_its_opds_programmes_and_agents(demo: Demo, browser):
    base = demo.stack.url("coverage")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=WIDE, locale="id-ID")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # Sumatera Utara, in Bahasa Indonesia by default, with a way back to the main dashboard.
    page.goto(f"{base}/who-pays?region={NORTH_SUMATRA}")
    shown(page, NORTH_SUMATRA)
    assert page.evaluate("document.documentElement.lang") == "id"
    assert page.inner_text("#r-name") == "Sumatera Utara"
    assert page.inner_text("#tab-programmes").startswith("Program Bantuan Iuran")
    assert page.get_attribute("#back", "href") == f"/#{NORTH_SUMATRA}"
    assert page.is_visible('#crumbs a[data-code="ID"]')
    tanjungbalais_programme(page)  # a city's programme counts in its province too
    page.evaluate("window.__notReloaded = true")

    # Down to Serdang Bedagai by the page's own links: its OPDs, 23 of them without covered staff.
    page.click("#kids summary")
    page.click(f'#kids-list a[data-code="{SERDANG_BEDAGAI}"]')
    shown(page, SERDANG_BEDAGAI)
    assert f"region={SERDANG_BEDAGAI}" in page.url
    assert page.is_visible(f'#crumbs a[data-code="{NORTH_SUMATRA}"]')
    page.click("#tab-employers")
    assert page.input_value("#e-kind") == "opd"
    text_becomes(page, "#e-none", str(OPD_WITHOUT_COVERED), COUNTING_MS)
    assert "OPD tanpa pekerja terlindungi" in page.inner_text("#e-headline")
    rows_become(page, "#e-body tr", len(demo_who_pays.OPD_NAMES))
    # Lowest compliance first: an OPD with nobody covered heads the list.
    assert page.inner_text('#e-body tr:first-child [data-k="compliance"] .pct') == "belum ada"
    page.select_option("#e-covered", "none")
    rows_become(page, "#e-body tr", OPD_WITHOUT_COVERED)
    assert page.query_selector_all("#e-body tr:not(.nobody)") == []
    page.screenshot(path=str(ARTIFACTS / "who-pays-opd-wide.png"), full_page=True)
    # One of them pays for a staff member: the open page follows, without a reload.
    opd = cover_a_staff_member(demo)
    text_becomes(page, "#e-none", str(OPD_WITHOUT_COVERED - 1), COUNTING_MS)
    rows_become(page, "#e-body tr", OPD_WITHOUT_COVERED - 1)
    assert not page.query_selector(f'#e-body tr[data-id="{opd}"]')
    page.select_option("#e-covered", "")
    rows_become(page, "#e-body tr", len(demo_who_pays.OPD_NAMES))
    text_becomes(page, f'#e-body tr[data-id="{opd}"] [data-k="active"]', "1")
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"
    # And back up to the province by the breadcrumbs.
    page.click(f'#crumbs a[data-code="{NORTH_SUMATRA}"]')
    shown(page, NORTH_SUMATRA)
    assert page.evaluate("window.__notReloaded === true"), "the page reloaded"

    # Tanjungbalai: its programme, and its channels and agents.
    page.goto(f"{base}/who-pays?region={TANJUNGBALAI}")
    shown(page, TANJUNGBALAI)
    tanjungbalais_programme(page)
    page.screenshot(path=str(ARTIFACTS / "who-pays-programmes-wide.png"), full_page=True)
    page.click("#tab-channels")
    page.wait_for_selector('#c-list .chan[data-channel="pemda"]', timeout=COUNTING_MS)
    rows_become(page, "#a-body tr[data-agent]", 1, at_least=True)
    agents = page.eval_on_selector_all("#a-body tr[data-agent]",
                                       "rs => rs.map(r => r.dataset.agent)")
    assert set(agents) <= set(demo_who_pays.AGENTS), agents
    page.screenshot(path=str(ARTIFACTS / "who-pays-channels-wide.png"), full_page=True)

    # English on request, Bahasa Indonesia again on the second click.
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'en'")
    assert page.inner_text("#tab-programmes").startswith("Funded programmes")
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'id'")
    assert not errors, errors
    context.close()

    # A 390 px phone: every tab fits without sideways scrolling (the lists become cards).
    phone = browser.new_context(viewport=PHONE, locale="id-ID", is_mobile=True,
                                device_scale_factor=2)
    page = phone.new_page()
    for region, tab, name in ((TANJUNGBALAI, "programmes", "programmes"),
                              (SERDANG_BEDAGAI, "employers", "opd"),
                              (TANJUNGBALAI, "channels", "channels")):
        page.goto(f"{base}/who-pays?region={region}&tab={tab}")
        shown(page, region)
        if name == "programmes":
            tanjungbalais_programme(page)
        elif name == "opd":
            text_becomes(page, "#e-none", str(OPD_WITHOUT_COVERED - 1))
        else:
            rows_become(page, "#a-body tr[data-agent]", 1, at_least=True)
        no_sideways_scroll(page, f"{region} ({tab})")
        page.screenshot(path=str(ARTIFACTS / f"who-pays-{name}-390.png"), full_page=True)
    phone.close()

    # Months later, with no new participant since, every agent is flagged to be dropped.
    demo.stack.set_clock(datetime.now(WIB) + timedelta(days=160))
    try:
        context = browser.new_context(viewport=WIDE, locale="id-ID")
        page = context.new_page()
        page.goto(f"{base}/who-pays?region={TANJUNGBALAI}&tab=channels")
        shown(page, TANJUNGBALAI)
        rows_become(page, "#a-body tr.dropped", len(agents))
        assert set(page.eval_on_selector_all(
            '#a-body [data-k="status"]', "cs => cs.map(c => c.textContent.trim())")) == {
            "akan dikeluarkan"}
        page.screenshot(path=str(ARTIFACTS / "who-pays-agents-dropped-wide.png"),
                        full_page=True)
        context.close()
    finally:
        demo.stack.clock_file.write_text("")  # the system clock again
