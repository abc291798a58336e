"""The "Domain sync" page in the Airflow UI, in a real browser: Debian's Chromium driven by Playwright signs in
to the running api-server, opens the page from the navigation and reads the figures of the runs it made on the
demo tenant (with one malformed user added, so that the quarantine shows)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.fixtures.airflow_services import airflow_services  # noqa: F401 - fixture
from tests.fixtures.sync_env import tenant_user

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SYNC = "tenant_to_domain_sync"
DEMO_TENANT = Path(__file__).resolve().parents[2] / "emulator" / "tenants" / "demo.json"


def open_status_page(browser, base_url: str, password: str, screenshot: Path | None = None):
    """Sign in as admin, open the page from the UI's navigation; returns (page, the page's frame)."""
    page = browser.new_page(viewport={"width": 1400, "height": 1400})
    page.goto(f"{base_url}/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{base_url}/", timeout=60_000)
    page.get_by_role("button", name="Browse").click()
    page.get_by_role("menuitem", name="Domain sync").click()
    frame = page.frame_locator("iframe").first
    frame.locator("#freshness").wait_for(timeout=60_000)
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    return page, frame


def test_the_status_page_shows_the_syncs_figures_in_the_airflow_ui(sync_env, airflow_services, tmp_path):  # noqa: F811
    if not os.path.exists(CHROMIUM):  # a failure, never a silent skip: the e2e tier needs the browser
        pytest.fail("Debian's chromium is not installed (scripts/test.sh installs it)", pytrace=False)
    from playwright.sync_api import sync_playwright

    services = airflow_services
    demo = json.loads(DEMO_TENANT.read_text(encoding="utf-8"))
    malformed = tenant_user("malformed", "Malformed UPN", userPrincipalName="no-at-sign.contoso.example")
    demo["users"].append(malformed)  # quarantined by validation
    sync_env.start_tenant(demo)
    services.start(
        apps="all",
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
    )
    services.wait_for_dag(SYNC)
    services.cli("dags", "unpause", SYNC)
    for run_id in ("status_first", "status_second"):
        services.cli("dags", "trigger", SYNC, "--conf", "{}", "--run-id", run_id)
        assert services.wait_for_run(SYNC, run_id) == "success", services.diagnostics()
    password = json.loads((services.home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    screenshot = Path(os.environ.get("DOMAIN_SYNC_STATUS_SCREENSHOT") or tmp_path / "status.png")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page, frame = open_status_page(browser, f"http://127.0.0.1:{services.port}", password, screenshot)
            assert "/plugin/domain-sync" in page.url
            assert "fresh" in frame.locator("#freshness").inner_text()
            synced = frame.locator("#synced").inner_text()
            users, groups = len(demo["users"]) - 1, len(demo["groups"])  # the demo's, the malformed one held
            assert f"users\t{users}" in synced and f"groups\t{groups}" in synced, synced
            assert "run status_second: clear, 0 changes" in frame.locator("#plan").inner_text()
            assert malformed["id"] in frame.locator("#quarantined").inner_text()
            assert "none" in frame.locator("#collisions").inner_text()
            delta = frame.locator("#delta-links").inner_text()
            assert "users" in delta and "groups" in delta, delta
            assert "objects_quarantined" in frame.locator("#alerts").inner_text()
        finally:
            browser.close()
    assert screenshot.stat().st_size > 10_000
