"""A fixed script of plain requests that shows every mutant's bug, independently of the
conformance suite: the corpus test runs it against the correct app and against each mutant
(and variant), and requires the observations to differ. A mutant nothing can tell apart from a
correct deployment would be no yardstick at all.

It is deliberately naive (one pass, fixed inputs): proving a bug observable, not finding it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from flask import Flask

from mockserver import mock_state

from .kit import KEY, KEY2

Observation = tuple[str, int, str, str]

_VOLATILE = [
    (re.compile(r"ledg_[0-9a-zA-Z]+"), "ledg_X"),
    (re.compile(r"chatcmpl-[0-9a-zA-Z]+"), "chatcmpl-X"),
    (re.compile(r'"created": ?\d+'), '"created":0'),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "T"),
]
_CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 16}
_HALF_CENT_CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x " * 4000}], "max_tokens": 16}
# A system prompt long enough that leaving it out of the price shows in micro-dollars.
_SYSTEM_PROMPT = "Answer briefly and politely. " * 40
_BIG_CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x " * 4000}] * 4, "max_tokens": 16}


class _Differs(Exception):
    """Raised at the first labelled answer that differs from the expected one."""


class Script:
    def __init__(self, app: Flask, expected: list[Observation] | None = None,
                 slower_than: float | None = None) -> None:
        self.app = app
        self.client = app.test_client()
        self.seen: list[Observation] = []
        self.lock = threading.Lock()
        self.expected = expected
        self.labelled = 0  # labelled answers so far (unlabelled ones, concurrent, are dropped)
        self.slower_than = slower_than
        self.started = time.monotonic()

    def call(self, label: str, method: str, path: str, *, key: str | None = KEY, body: Any = None,
             raw: bytes | None = None, headers: dict[str, str] | None = None, record: bool = True,
             content_type: str = "application/json") -> Any:
        sent = dict(headers or {})
        if key is not None:
            sent.setdefault("Authorization", f"Bearer {key}")
        if raw is not None:
            response = self.client.open(path, method=method, data=raw, headers=sent,
                                        content_type=content_type)
        else:
            response = self.client.open(path, method=method, json=body, headers=sent)
        shown = sorted((k, v) for k, v in response.headers.items() if k not in ("Content-Length", "Content-Type"))
        text = f"{shown} {response.get_data().decode('utf-8', 'backslashreplace')}"  # a gzip body too
        for pattern, replacement in _VOLATILE:
            text = pattern.sub(replacement, text)
        if record:
            self.observe((label, response.status_code, response.headers.get("Content-Type", ""), text))
        return response

    def observe(self, observation: Observation) -> None:
        """Record what was seen; with expected observations, stop at the first that differs."""
        with self.lock:
            self.seen.append(observation)
            # Only labelled answers stop the script: they come from its own thread, while an
            # unlabelled one may come from a concurrent request's thread, which must run on.
            if not observation[0] or self.expected is None:
                return
            at, self.labelled = self.labelled, self.labelled + 1
            if at >= len(self.expected) or self.expected[at] != observation:
                raise _Differs
            if self.slower_than is not None and time.monotonic() - self.started > self.slower_than:
                self.seen.append((f"still answering as expected after {self.slower_than:g} s", 0, "", "slower"))
                raise _Differs

    def grant(self, label: str, user: Any, amount: Any, key: str | None = None, api_key: str = KEY,
              **extra: Any) -> Any:
        headers = {"Idempotency-Key": key} if key else {}
        return self.call(label, "POST", "/v1/funding/grant", key=api_key, headers=headers,
                         body={"external_user_id": user, "amount": amount, **extra})

    def read(self, label: str, user: str) -> None:
        self.call(label + " path", "GET", f"/v1/users/{quote(user, safe='')}/balance")
        self.call(label + " query", "GET", f"/v1/balance?external_user_id={quote(user, safe='')}")

    def pool(self, label: str) -> None:
        self.call(label, "GET", "/v1/balance")

    def together(self, label: str, *calls: Callable[[], Any]) -> None:
        start = threading.Barrier(len(calls))

        def run(call: Callable[[], Any]) -> None:
            start.wait()
            call()

        threads = [threading.Thread(target=run, args=(call,)) for call in calls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def exercise(app: Flask, until_it_differs_from: list[Observation] | None = None,
             slower_than: float | None = None) -> list[Observation]:
    """Everything the script saw, in order (concurrent answers themselves left out).

    Given the correct app's observations, the script stops at the first answer that differs
    from them (the last one returned): that one difference is all the corpus test needs, and
    most mutants show it early. ``slower_than``: seconds after which an app that has answered
    alike so far is stopped too, with a last observation saying so (for variants of timing
    only, whose one difference is that they take longer)."""
    s = Script(app, until_it_differs_from, slower_than)
    try:
        for part in (_money, _idempotency, _identities, _chats, _errors_and_auth, _more_money_and_chats,
                     _pricing_keys_and_forms):
            part(s)
    except _Differs:
        pass
    return [o for o in s.seen if o[0]]


def _money(s: Script) -> None:
    s.pool("pool at start")
    for i, amount in enumerate(["0.01", "0.29", "0.57", "1.15", "2.01", "0.50"]):
        s.grant(f"grant {amount}", "money-user", float(amount), key=f"money-{i}")
        s.read(f"after {amount}", "money-user")
        s.pool(f"pool after {amount}")
    s.grant("integer amount", "money-int", 1, description="Welcome bonus")
    s.grant("non-Latin-1 description", "money-int", 0.01, description="奖励 bonus")
    s.grant("an unknown field", "money-int", 0.01, campaign="spring")
    s.read("integer amount", "money-int")
    s.call("packages", "GET", "/v1/packages", key=None)
    s.call("packages, gzip accepted", "GET", "/v1/packages", key=None, headers={"Accept-Encoding": "gzip"})
    s.call("me", "GET", "/v1/me")


def _idempotency(s: Script) -> None:
    s.grant("first", "idem-user", 0.01, key="idem-1")
    s.grant("replay", "idem-user", 0.01, key="idem-1")
    s.pool("pool after replay")
    s.grant("same body, new key", "idem-user", 0.01, key="idem-2")
    s.grant("keyless", "idem-user", 0.01)
    s.grant("keyless again", "idem-user", 0.01)
    s.grant("reused key, other amount", "idem-user", 0.02, key="idem-1")
    s.pool("pool after reuse")
    s.grant("reused key, other user", "idem-other", 0.01, key="idem-1")
    s.grant("second API key, same key", "idem-user", 0.01, key="idem-1", api_key=KEY2)
    s.read("idempotency", "idem-user")
    s.together("concurrent distinct keys",
               *(lambda i=i: s.grant("", "race-user", 0.01, key=f"race-{i}") for i in range(2)))
    s.together("concurrent first grants",
               *(lambda i=i: s.grant("", "race-new", 0.01, key=f"new-{i}") for i in range(2)))
    s.together("concurrent same key", *(lambda: s.grant("", "race-same", 0.01, key="same") for _ in range(2)))
    s.seen = [o for o in s.seen if o[0]]  # the concurrent answers' order is not deterministic
    for user in ("race-user", "race-new", "race-same"):
        s.read(user, user)
    s.pool("pool after races")
    for i in range(20):
        s.grant(f"lru filler {i}", "lru-user", 0.01, key=f"lru-{i}")
    s.grant("replay after 20 keys", "lru-user", 0.01, key="lru-0")
    long_key = "K" * 70
    for label, key in (("a key in capitals", "IDEM-1"), ("a 70-character key", long_key),
                       ("the same 70 characters but the last", long_key[:-1] + "k")):
        s.grant(label, "idem-look-alike", 0.01, key=key)
    s.read("idempotency look-alikes", "idem-look-alike")
    mock_state(s.app).clock.advance(65)
    s.grant("replay after 65 s", "idem-user", 0.01, key="idem-1")


def _identities(s: Script) -> None:
    long_a, long_b = "L" * 64 + "-a" * 20, "L" * 64 + "-b" * 20
    for user in ["Zoë", "a/b", "ann lee", " bob ", "Case", "case", "50%41", "奖励", "ann+tag@x.io", "007",
                 long_a, long_b, "bob", "bob ", "Zoe", "Ölaf", "ölaf", "zoe\u0308", "ann\U0001F600", "ann\U0001F389"]:
        s.grant(f"grant {user!r}", user, 0.01)
        s.read(f"read {user!r}", user)


def _chats(s: Script) -> None:
    s.grant("fund chat user", "Chatter", 1.00)
    s.call("chat", "POST", "/v1/users/Chatter/chat/completions", body=_CHAT)
    s.read("after chat", "Chatter")
    s.pool("pool after user chat")
    s.grant("a grant after a chat", "Chatter", 0.01)
    s.read("after the grant after a chat", "Chatter")
    s.grant("fund another chat user", "Other", 0.01)
    s.call("path chat naming another user in the header", "POST", "/v1/users/Chatter/chat/completions",
           body=_CHAT, headers={"X-External-User-ID": "Other"})
    s.read("the user the header named", "Other")
    s.call("chat for a user never granted", "POST", "/v1/users/nobody/chat/completions", body=_CHAT)
    long_text = {**_CHAT, "messages": [{"role": "user", "content": "Summarise this. " * 600}]}
    s.call("a chat of 9,600 characters", "POST", "/v1/users/Chatter/chat/completions", body=long_text)
    s.call("header chat for a user never granted", "POST", "/v1/chat/completions", body=_CHAT,
           headers={"X-External-User-ID": "nobody-either"})
    s.pool("pool after chats for users never granted")
    s.call("stream", "POST", "/v1/users/Chatter/chat/completions", body={**_CHAT, "stream": True})
    s.read("after stream", "Chatter")
    s.call("usage after a stream", "GET", "/v1/me")
    s.call("header form", "POST", "/v1/chat/completions", body=_CHAT, headers={"X-External-User-ID": "Chatter"})
    s.read("after header form", "Chatter")
    s.call("header form streamed", "POST", "/v1/chat/completions", body={**_CHAT, "stream": True},
           headers={"X-External-User-ID": "Chatter"})
    s.read("after header form streamed", "Chatter")
    s.pool("pool after header form streamed")
    s.call("developer chat", "POST", "/v1/chat/completions", body=_CHAT)
    s.read("after developer chat", "Chatter")
    s.pool("pool after developer chat")
    s.grant("fund a streamer", "Streamer", 0.10)
    one_token = {**_CHAT, "max_tokens": 1, "stream": True, "stream_options": {"include_usage": True}}
    s.call("stream of one token, with usage", "POST", "/v1/users/Streamer/chat/completions", body=one_token)
    s.read("after a stream of one token", "Streamer")
    s.grant("fund a cent", "drained", 0.01)
    s.call("small chat", "POST", "/v1/users/drained/chat/completions", body=_CHAT)
    for i in range(3):
        s.call(f"drain {i}", "POST", "/v1/users/drained/chat/completions", body=_BIG_CHAT)
    s.call("drained stream", "POST", "/v1/users/drained/chat/completions", body={**_BIG_CHAT, "stream": True})
    s.read("drained", "drained")
    s.pool("pool after a refused chat")
    s.grant("fund one chat", "spender", 0.01)
    s.together("concurrent chats", *(lambda: s.call("", "POST", "/v1/users/spender/chat/completions",
                                                    body=_HALF_CENT_CHAT) for _ in range(2)))
    s.seen = [o for o in s.seen if o[0]]
    s.read("after concurrent chats", "spender")
    s.call("float max_tokens", "POST", "/v1/users/Chatter/chat/completions", body={**_CHAT, "max_tokens": 3.0})
    s.call("a model without a price", "POST", "/v1/users/Chatter/chat/completions",
           body={**_CHAT, "model": "gpt-unknown"})
    s.grant("fund a chat that a grant overlaps", "overlapped", 0.01)
    chat = threading.Thread(target=lambda: s.call("", "POST", "/v1/users/overlapped/chat/completions", body=_CHAT))
    chat.start()
    threading.Event().wait(0.1)  # the chat is in flight (a slow provider) when the grant lands
    s.grant("a grant during the chat", "overlapped", 0.01)
    chat.join()
    s.seen = [o for o in s.seen if o[0]]
    s.read("after a chat and a grant during it", "overlapped")


def _errors_and_auth(s: Script) -> None:
    s.grant("missing amount", "err-user", None)
    s.call("missing amount key", "POST", "/v1/funding/grant", body={"external_user_id": "err-user"})
    s.call("empty", "POST", "/v1/funding/grant", body={})
    s.call("not JSON", "POST", "/v1/funding/grant", raw=b"amount=1")
    s.call("a grant sent as text/plain", "POST", "/v1/funding/grant", content_type="text/plain",
           raw=b'{"external_user_id": "plain-user", "amount": 0.5}', headers={"Idempotency-Key": "plain-1"})
    s.read("after the text/plain grant", "plain-user")
    s.call("a grant body past the limit", "POST", "/v1/funding/grant",
           raw=b'{"external_user_id": "big-user", "amount": 0.5}' + b" " * 70_000, headers={"Idempotency-Key": "big-1"})
    s.grant("null description", "err-user", 0.01, description=None)
    s.grant("string amount", "err-user", "0.50")
    for amount in (-0.5, 0.001, 20000):
        s.grant(f"invalid amount {amount}", "err-user", amount)
    s.pool("pool after refused grants")
    s.read("unknown user", "never-granted")
    s.call("unknown route", "GET", "/v1/nope")
    s.call("GET on a POST route", "GET", "/v1/funding/grant")
    for method in ("PUT", "DELETE"):
        s.call(f"{method} balance", method, "/v1/balance")
    s.call("no key", "GET", "/v1/balance", key=None)
    for label, value in [("raw key", KEY), ("Token scheme", f"Token {KEY}"), ("near miss", f"Bearer {KEY[:-1]}X"),
                         ("upper-cased", f"Bearer {KEY.upper()}"), ("extra chars", f"Bearer {KEY}zz"),
                         ("unknown", "Bearer sk-quota-" + "0" * 32),
                         ("lower-case scheme", f"bearer {KEY}"), ("empty bearer", "Bearer "),
                         ("dashes removed", f"Bearer {KEY.replace('-', '')}")]:
        s.call(label, "GET", "/v1/balance", key=None, headers={"Authorization": value})
    s.call("near miss on /v1/me", "GET", "/v1/me", key=None, headers={"Authorization": f"Bearer {KEY[:-1]}X"})
    s.call("me without key", "GET", "/v1/me", key=None)
    s.call("query without key", "GET", "/v1/balance?external_user_id=idem-user", key=None)
    s.call("HEAD /v1/me without key", "HEAD", "/v1/me", key=None)
    s.call("/V1/ME without key", "GET", "/V1/ME", key=None)
    s.call("a grant sent as application/json; charset=utf-8", "POST", "/v1/funding/grant",
           content_type="application/json; charset=utf-8", raw=b'{"external_user_id": "charset-user", "amount": 0.5}')


def _more_money_and_chats(s: Script) -> None:
    """Large amounts, a replay after a later grant, awkward ids in chats and queries, chats of
    two users at once, many grants at once, a top-up after a 402, the second key, and a
    developer-billed stream."""
    s.grant("a grant of $10.03", "large-user", 10.03)
    s.grant("a grant of $100", "large-user", 100)
    s.read("after large grants", "large-user")
    s.grant("replayed later, first", "replay-later", 0.05, key="later-1")
    s.grant("replayed later, another grant", "replay-later", 0.01, key="later-2")
    s.grant("replayed later, the replay", "replay-later", 0.05, key="later-1")
    s.read("after a replay after a later grant", "replay-later")
    for user in ("ann lee", "ann,lee"):
        s.grant(f"fund {user!r}", user, 0.10)
        s.call(f"chat as {user!r}", "POST", f"/v1/users/{quote(user, safe='')}/chat/completions", body=_CHAT)
        s.read(f"after chatting as {user!r}", user)
    for user in ("pair-a", "pair-b"):
        s.grant(f"fund {user}", user, 0.02)
    s.together("two users' chats at once", *(lambda u=u: s.call("", "POST", f"/v1/users/{u}/chat/completions",
                                                                 body=_CHAT) for u in ("pair-a", "pair-b")))
    s.seen = [o for o in s.seen if o[0]]
    for user in ("pair-a", "pair-b"):
        s.read(f"after two users' chats at once: {user}", user)
    s.together("five grants at once", *(lambda i=i: s.grant("", "many-user", 0.01, key=f"many-{i}") for i in range(5)))
    s.seen = [o for o in s.seen if o[0]]
    s.read("after five grants at once", "many-user")
    s.call("header chat for a drained user", "POST", "/v1/chat/completions", body=_BIG_CHAT,
           headers={"X-External-User-ID": "drained"})
    s.pool("pool after a header chat for a drained user")
    s.grant("top up the drained user", "drained", 0.01)
    s.call("a chat after the top-up", "POST", "/v1/users/drained/chat/completions", body=_CHAT)
    s.read("after a chat after the top-up", "drained")
    s.call("me with the second key", "GET", "/v1/me", key=KEY2)
    s.call("a developer stream", "POST", "/v1/chat/completions", body={**_CHAT, "stream": True})
    s.pool("pool after a developer stream")


def _pricing_keys_and_forms(s: Script) -> None:
    """Choices, tools, max_completion_tokens and a system message in chats; a look-alike id chatting; a header id
    holding '%41'; a key freed after an error; same-key grants in flight together; near-miss
    keys on chats; the longest key and one past it; OPTIONS on reads without a key; a long
    description, an unknown key on the public route, and a chat's limit past a provider's cap."""
    s.grant("fund the pricing user", "pricing", 1.00)
    for label, extra in (("three choices", {"n": 3}), ("max_completion_tokens", {"max_completion_tokens": 1}),
                         ("a tool", {"tools": [{"type": "function", "function": {
                             "name": "lookup", "description": "Look a word up in a long dictionary " * 20,
                             "parameters": {"type": "object", "properties": {}}}}]}),
                         ("a system message", {"messages": [{"role": "system", "content": _SYSTEM_PROMPT},
                                                            *_CHAT["messages"]]})):
        s.call(f"chat with {label}", "POST", "/v1/users/pricing/chat/completions", body={**_CHAT, **extra})
    s.read("after the pricing chats", "pricing")
    s.grant("fund a case look-alike", "LookAlike", 0.10)
    s.call("chat as its lower-case twin", "POST", "/v1/users/lookalike/chat/completions", body=_CHAT)
    s.read("the look-alike after its twin chatted", "LookAlike")
    s.grant("fund a user with %41 in its id", "pct%41", 0.10)
    s.call("header chat as that user", "POST", "/v1/chat/completions", body=_CHAT,
           headers={"X-External-User-ID": "pct%41"})
    s.grant("an invalid amount under a key", "freed-key", -1, key="freed-1")
    s.grant("a valid grant under that key", "freed-key", 0.01, key="freed-1")
    answers: list[Any] = []
    s.together("same key in flight", *(lambda: answers.append(
        s.call("", "POST", "/v1/funding/grant", headers={"Idempotency-Key": "in-flight-1"}, record=False,
               body={"external_user_id": "in-flight", "amount": 0.01})) for _ in range(6)))  # six: some overlap
    # Which of the two lands first varies; that every answer is a success or an error in the
    # envelope, and none a server error, does not.
    s.observe(("same key in flight: every answer a success or an enveloped client error", 0, "", str(all(
        a.status_code < 500 and (a.status_code == 200 or "code" in (a.get_json(silent=True) or {}).get("error", ""))
        for a in answers))))
    near = KEY[:-3] + "xyz"
    s.call("path chat with a near-miss key", "POST", "/v1/users/pricing/chat/completions", key=near, body=_CHAT)
    s.call("header chat with a near-miss key", "POST", "/v1/chat/completions", key=near, body=_CHAT,
           headers={"X-External-User-ID": "pricing"})
    for length in (255, 256):
        s.grant(f"a {length}-character key", "long-key", 0.01, key="k" * length)
    for path in ("/v1/me", "/v1/balance", "/v1/users/pricing/balance"):
        s.call(f"OPTIONS {path} without a key", "OPTIONS", path, key=None)
    s.grant("a 300-character description", "long-note", 0.01, description="n" * 300)
    s.call("packages with an unknown key", "GET", "/v1/packages", key="sk-quota-unknown")
    s.call("a chat allowing 20,000 tokens", "POST", "/v1/users/pricing/chat/completions",
           body={**_CHAT, "max_tokens": 20_000})
    s.call("a grant with an amount and no user", "POST", "/v1/funding/grant", body={"amount": 0.01})
    s.pool("pool after a grant with no user")
    s.call("a replay in other bytes, first", "POST", "/v1/funding/grant", headers={"Idempotency-Key": "bytes-1"},
           raw=b'{"external_user_id": "bytes-user", "amount": 0.01}')
    s.call("a replay in other bytes, again", "POST", "/v1/funding/grant", headers={"Idempotency-Key": "bytes-1"},
           raw=b'{"amount":0.01,"external_user_id":"bytes-user"}')
    stream = {**_CHAT, "stream": True}
    streamed = s.call("a stream", "POST", "/v1/users/pricing/chat/completions", body=stream)
    ids = set(re.findall(r'"id": ?"([^"]+)"', streamed.get_data(as_text=True)))
    s.observe(("a stream's chunks share one id", 0, "", str(len(ids) == 1)))  # ids differ run to run
    s.call("a stream asked with Accept: application/json", "POST", "/v1/users/pricing/chat/completions",
           body=stream, headers={"Accept": "application/json"})
    s.call("stream: false", "POST", "/v1/users/pricing/chat/completions", body={**_CHAT, "stream": False})
    s.grant("fund OpenAI's user field's user", "field-user", 0.10)
    s.call("a header chat naming another user in OpenAI's user field", "POST", "/v1/chat/completions",
           body={**_CHAT, "user": "field-user"}, headers={"X-External-User-ID": "pricing"})
    s.read("the user named only in the user field", "field-user")
    packages = s.call("packages, once more", "GET", "/v1/packages", key=None, record=False)
    s.observe(("packages answered with a Content-Length", 0, "", str("Content-Length" in packages.headers)))
    s.call("an empty external_user_id", "GET", "/v1/balance?external_user_id=")
    s.call("a '+' in the query", "GET", "/v1/balance?external_user_id=ann+lee")
    s.grant("an empty description", "empty-note", 0.01, description="")
