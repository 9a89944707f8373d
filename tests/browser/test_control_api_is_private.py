"""A page on another origin, in a real browser, can neither change nor read the control API:
no CORS grant for ``/_mock/*``, and state-changing requests from other sites refused (issue 11).
The dashboard itself, on the mock's own origin, keeps working (test_browser.py)."""

from __future__ import annotations

import time

from mockserver import mock_state

TIMEOUT_MS = 5000

# Every way a page can send a request without asking first, and two that ask (and are denied).
ATTACKS = """
async (mock) => {
  const outcome = {};
  const attempt = async (name, run) => {
    try { outcome[name] = await run(); } catch (error) { outcome[name] = "blocked: " + error.name; }
  };
  await attempt("read state", async () => (await fetch(mock + "/_mock/state")).status);
  const json = {"Content-Type": "application/json"};
  await attempt("json reset", async () =>
    (await fetch(mock + "/_mock/reset", {method: "POST", headers: json, body: "{}"})).status);
  await attempt("text seed", async () =>
    (await fetch(mock + "/_mock/seed", {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                                        body: "api_keys: [sk-quota-attacker-key-0000000]\\npool: 0"})).type);
  await attempt("form-encoded fault", async () =>
    (await fetch(mock + "/_mock/faults", {method: "POST", mode: "no-cors",
      body: new URLSearchParams({operation_id: "getMe", action: "fail", status: "503"})})).type);
  await attempt("beacon reset", async () => navigator.sendBeacon(mock + "/_mock/reset", "x"));
  await attempt("no-cors clock", async () =>
    (await fetch(mock + "/_mock/clock", {method: "POST", mode: "no-cors", body: '{"advance_seconds": 99999}'})).type);
  // A form the page submits (no script can read its answer), into a frame of its own.
  const frame = document.createElement("iframe");
  frame.name = "sink";
  frame.src = "about:blank";
  await new Promise((loaded) => { frame.onload = loaded; document.body.appendChild(frame); });
  await new Promise((done) => {
    frame.onload = () => done();  // now the form's answer
    const form = document.createElement("form");
    form.method = "POST";
    form.action = mock + "/_mock/dashboard/reset";
    form.target = "sink";
    document.body.appendChild(form);
    form.submit();
  });
  return outcome;
}
"""


def test_a_page_on_another_origin_cannot_reset_seed_or_read_the_mock(browser, mock, other_origin):
    server, recorder = mock
    state = mock_state(server.app)
    state.reset()
    state.service.set_balance("victim", 7_000_000)  # gone if anything resets the mock
    before = (state.service.seed, state.service.developer_balance(), state.service.store.users(), state.clock.offset)
    seen_before = len(recorder.seen)

    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(other_origin)
    outcome = page.evaluate(ATTACKS, server.base_url)
    page.close()

    # The page could not read, and the requests that needed a preflight never left it.
    assert outcome["read state"].startswith("blocked"), outcome
    assert outcome["json reset"].startswith("blocked"), outcome
    # The requests a browser sends without asking arrived (the beacon whenever the browser
    # chooses: wait for it), and changed nothing.
    unasked = {("POST", "/_mock/seed"), ("POST", "/_mock/faults"), ("POST", "/_mock/dashboard/reset"),
               ("POST", "/_mock/clock"), ("POST", "/_mock/reset")}  # fmt: skip
    deadline = time.monotonic() + 10
    while not unasked <= set(recorder.seen[seen_before:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = recorder.seen[seen_before:]
    assert unasked <= set(sent), sent
    assert ("OPTIONS", "/_mock/reset") in sent  # the JSON reset asked first, got no grant, and was never sent
    assert sent.count(("POST", "/_mock/reset")) == 1  # the beacon's
    after = (state.service.seed, state.service.developer_balance(), state.service.store.users(), state.clock.offset)
    assert after == before
    assert state.faults.rules(state.clock.now()) == []
    assert state.service.user_balance("victim") == 7_000_000
