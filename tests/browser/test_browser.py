"""A browser app on another origin uses the mock with no proxy; the dashboard shows it."""

from __future__ import annotations

from .conftest import ARTIFACTS

TIMEOUT_MS = 5000


def test_a_page_on_another_origin_grants_with_fetch_preflight_and_all(browser, mock, other_origin):
    server, recorder = mock
    assert other_origin != server.base_url
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(other_origin)
    first = page.evaluate("grant('browser_user', 2.5, 'browser-key-1')")
    assert first["status"] == 200 and first["body"]["balance_after"] == "$2.50"
    assert ("OPTIONS", "/v1/funding/grant") in recorder.seen  # the browser's preflight, answered
    again = page.evaluate("grant('browser_user', 2.5, 'browser-key-1')")
    assert again["body"]["duplicate"] is True
    assert again["replayed"] == "true"  # an exposed header: the page's script can read it
    page.close()


def test_a_page_chats_with_the_headers_openais_sdk_adds(browser, mock, other_origin):
    """The preflight allows whatever headers the page's client library adds, so the chat goes through."""
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(other_origin)
    assert page.evaluate("grant('sdk_user', 1, 'browser-key-sdk')")["status"] == 200
    chat = page.evaluate("sdkChat('sdk_user')")
    assert chat["status"] == 200 and chat["body"]["object"] == "chat.completion"
    page.close()


def test_prefer_code_402_surfaces_as_the_documented_error_in_the_page(browser, mock, other_origin):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(other_origin)
    result = page.evaluate("grant('user_123', 1, 'browser-key-402', {'Prefer': 'code=402'})")
    assert result["status"] == 402
    assert result["body"] == {
        "error": {"code": "insufficient_balance", "message": "Grant pool balance too low for this grant"}
    }
    assert page.text_content("#out") == "error 402 insufficient_balance: Grant pool balance too low for this grant"
    page.close()


def test_the_dashboard_shows_a_grant_without_reload_and_is_saved_as_a_screenshot(browser, mock, other_origin):
    server, _ = mock
    dashboard = browser.new_page(viewport={"width": 1280, "height": 800})
    dashboard.set_default_timeout(TIMEOUT_MS)
    dashboard.goto(server.base_url + "/_mock/")
    dashboard.evaluate("window.__not_reloaded = true")
    assert "live_user" not in dashboard.text_content("[data-testid=users]")

    app = browser.new_page()
    app.goto(other_origin)
    assert app.evaluate("grant('live_user', 7, 'browser-live-1')")["status"] == 200
    app.close()

    users = dashboard.locator("[data-testid=users]")
    users.filter(has_text="live_user").wait_for()  # polled in, no reload
    assert "$7.00" in users.text_content()
    assert dashboard.evaluate("window.__not_reloaded") is True
    assert "browser-live-1" in dashboard.text_content("[data-testid=keys]")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    dashboard.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    # Readable at 1280x800: nothing is wider than the window.
    assert dashboard.evaluate("document.documentElement.scrollWidth") <= 1280
    dashboard.close()


def test_the_dashboard_forms_work_from_the_keyboard(browser, mock):
    server, _ = mock
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base_url + "/_mock/")
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to the state"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "g-user"
    page.keyboard.press("Control+A")
    page.keyboard.type("keyboard_user")
    page.keyboard.press("Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("1.25")
    page.keyboard.press("Enter")  # submits the grant form
    page.get_by_role("status").filter(has_text="Granted $1.25 to keyboard_user").wait_for()
    assert page.get_by_label("External user id").count() == 1  # fields are found by their labels
    page.close()


def test_the_request_panel_shows_a_refused_request_live_and_it_expands_to_its_problem(browser, mock, other_origin):
    server, _ = mock
    dashboard = browser.new_page(viewport={"width": 1280, "height": 800})
    dashboard.set_default_timeout(TIMEOUT_MS)
    dashboard.goto(server.base_url + "/_mock/")
    app = browser.new_page()
    app.goto(other_origin)
    assert app.evaluate("grant('panel_user', -5, 'browser-panel-1')")["status"] == 400

    panel = dashboard.locator("[data-testid=requests]")
    refused = panel.locator("details.refused", has_text="browser-panel-1").first
    refused.wait_for()  # polled in, no reload
    problem = refused.locator("[data-testid=problem]")
    assert not problem.is_visible()  # folded until someone asks
    refused.locator("summary").click()
    assert "bad_request: Invalid field 'amount'" in problem.text_content()
    assert problem.is_visible()

    # A later request re-renders the panel; the opened request stays open.
    assert app.evaluate("grant('panel_user', 1, 'browser-panel-2')")["status"] == 200
    panel.locator("details", has_text="browser-panel-2").first.wait_for()
    reopened = panel.locator("details.refused", has_text="browser-panel-1").first
    assert reopened.locator("[data-testid=problem]").is_visible()
    app.close()
    dashboard.close()
