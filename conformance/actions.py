"""The requests the rules' probes send, as small functions: a grant, the balance reads, a chat,
/v1/me. Each goes through the target's guarded session and the response checks, and each
grant is counted against the probe's share of the budget before it is sent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mockserver.domain.money import MICROS_PER_CENT

from .billing_mode import refused_as_wrong_endpoint, wrong_endpoint_reason
from .checks import json_integer, parse_money
from .engine import Exchange
from .facts import BALANCE, CHAT, GRANT, ME, USER_BALANCE, USER_CHAT, facts_of
from .properties import Probe
from .safety import potential_credit
from .strategies import amount_json

NEW_KEY = object()  # a fresh Idempotency-Key
DESCRIPTION = "quota-conformance"
ABSENT = object()  # leave the field out
SMALL_PROMPT = "Say hello."
# About 9,000 tokens of prompt (sixteen messages of 2,255 characters: each short enough for a
# gateway that caps a message's text far below the contract's limit): one chat costs more than
# a cent at any usual price.
BIG_PROMPT = ("Count the words in this sentence please. " * 55).strip()
BIG_MESSAGES = 16


@dataclass(frozen=True)
class Balance:
    """A balance read: its answer, the display form in cents and the micro-dollar form
    (``balance_microdollars``, when the answer has one)."""

    exchange: Exchange
    cents: int | None
    micros: int | None

    @property
    def ok(self) -> bool:
        return self.exchange.ok and self.cents is not None

    @property
    def shown(self) -> str:
        """The balance as answered, for messages: never Python's None."""
        if not self.exchange.ok:
            return f"an answer {self.exchange.status} {self.exchange.error_code or ''}".strip()
        value = self.exchange.field("balance")
        return repr(value) if value is not None else "no balance field"

    def agrees_with(self, micros: int) -> bool:
        """Whether this read shows exactly ``micros``: the micro form equal, the display form
        ``micros`` truncated or rounded to the cent (the contract truncates; the docs are silent)."""
        if self.micros is not None and self.micros != micros:
            return False
        return self.cents is not None and self.cents in display_cents(micros)


def display_cents(micros: int) -> set[int]:
    """The cents a display form of ``micros`` may show: truncated, or rounded half up."""
    down = micros // MICROS_PER_CENT
    rounded = (micros + MICROS_PER_CENT // 2) // MICROS_PER_CENT
    return {down, rounded}


def shown(value: Any) -> str:
    """A field's value for a message; a missing one says so rather than printing None."""
    return "missing" if value is None else repr(value)


def code_text(exchange: Exchange, otherwise: Any = None) -> str:
    """An answer's error code for a message: ``'bad_request'``, or what it had instead."""
    code = exchange.error_code
    if code is not None:
        return repr(code)
    if otherwise is not None:
        return repr(otherwise)
    return "without an error code" if exchange.status >= 400 else "(no error)"


def auth_headers(p: Probe, api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def grant(p: Probe, user: Any, cents: int | None = None, *, amount: Any = ABSENT, key: Any = NEW_KEY,
          description: Any = DESCRIPTION, api_key: str | None = None, extra: dict[str, Any] | None = None,
          pool_may_refuse: bool = False) -> Exchange:
    """POST a grant of ``cents`` (or of the raw ``amount``) to ``user``; ``key=None`` sends no
    Idempotency-Key, ``description=ABSENT`` none either.

    A grant the account's pool cannot cover is refused (402, the contract's GrantPoolTooLow),
    and that is the account's state, not the target's fault: unless the caller tests that very
    refusal (``pool_may_refuse``), the example is skipped when the pool is read lower than the
    amount."""
    if amount is ABSENT:
        amount = amount_json(cents if cents is not None else 1)
    p.spend(amount)
    body: dict[str, Any] = {"external_user_id": user, "amount": amount}
    if description is not ABSENT:
        body["description"] = description
    body.update(extra or {})
    headers = auth_headers(p, api_key)
    if key is NEW_KEY:
        key = p.t.guard.new_idempotency_key()
    if key is not None:
        headers["Idempotency-Key"] = key
    exchange = p.t.send(GRANT, headers=headers, body=body, auth=api_key is None)
    _unless_unavailable(p, exchange, "grant", statuses=STORE_UNAVAILABLE)  # a keyless write is never retried
    ledger_id = exchange.field("ledger_id") if exchange.ok and exchange.field("duplicate") is False else None
    if isinstance(ledger_id, str):
        p.t.ledger_owners.setdefault(ledger_id, user)
    if not pool_may_refuse:
        skip_if_the_pool_refused(p, exchange, amount)
    return exchange


def skip_if_the_pool_refused(p: Probe, exchange: Exchange, amount: Any) -> None:
    """Skip the example when ``exchange`` is the contract's refusal of a grant the pool cannot
    cover and the pool reads lower than ``amount``: the account's state, not the target's fault."""
    if p.t.facts.error("GrantPoolTooLow").answered(exchange):
        pool = developer_balance(p)
        micros = pool_micros(pool)
        if micros is not None and micros < potential_credit(amount):
            p.skip(f"the account's grant pool ({pool.shown}) cannot cover a grant of {shown(amount)}: "
                   "fund the pool, or lower --budget")


# What the contract lists for a failure outside the request: the provider's (502, 504) and the
# service's or its store's (503).
UNAVAILABLE_STATUSES = frozenset({502, 503, 504})
STORE_UNAVAILABLE = frozenset({503})  # a grant's own: no provider behind it
# A deployment that fails this many chats (or grants) in a row, or this many making up more than
# half of those it was sent, is not unlucky: from then on its failures are judged, so that one
# answering every chat (or four in five) 502 is failed, not skipped for good.
UNAVAILABLE_IN_A_ROW = 5


@dataclass
class UnavailableTally:
    """One kind of request's answers so far (chats or grants), and how many were "unavailable"."""

    answered: int = 0
    unavailable: int = 0
    in_a_row: int = 0

    def judged(self, unavailable: bool) -> bool:
        """Count one answer; whether an unavailable one is judged rather than skipped as bad luck."""
        self.answered += 1
        self.unavailable += unavailable
        self.in_a_row = self.in_a_row + 1 if unavailable else 0
        most = self.unavailable >= UNAVAILABLE_IN_A_ROW and 2 * self.unavailable > self.answered
        return self.in_a_row >= UNAVAILABLE_IN_A_ROW or most


def _unless_unavailable(p: Probe, exchange: Exchange, what: str, statuses: frozenset[int] = UNAVAILABLE_STATUSES
                        ) -> None:
    unavailable = exchange.status in statuses and isinstance(exchange.error_code, str)
    tally = p.t.unavailable.setdefault(what, UnavailableTally())
    if not tally.judged(unavailable) and unavailable:
        p.skip(f"a {what} answered {exchange.status} {exchange.error_code} (the provider or the service was "
               "unavailable, as openapi.yaml allows): this example is not judged")


def _balance(exchange: Exchange) -> Balance:
    cents = parse_money(exchange.field("balance"), exchange_money(exchange)) if exchange.ok else None
    micros = exchange.field("balance_microdollars") if exchange.ok else None
    return Balance(exchange, cents, json_integer(micros))


def exchange_money(exchange: Exchange) -> Any:
    return facts_of(exchange.case).money


def user_balance(p: Probe, user: str, api_key: str | None = None) -> Balance:
    """GET /v1/users/{id}/balance."""
    return _balance(p.t.send(USER_BALANCE, path={"external_user_id": user}, headers=auth_headers(p, api_key),
                             auth=api_key is None))


def query_balance(p: Probe, user: str) -> Balance:
    """GET /v1/balance?external_user_id=."""
    return _balance(p.t.send(BALANCE, query={"external_user_id": user}))


def developer_balance(p: Probe) -> Balance:
    """GET /v1/balance: the developer balance, the grant pool."""
    return _balance(p.t.send(BALANCE))


def pool_micros(balance: Balance) -> int | None:
    """A balance read in micro-dollars (from its whole cents when it has no micro-dollar field)."""
    if not balance.ok:
        return None
    return balance.micros if balance.micros is not None else balance.cents * MICROS_PER_CENT  # type: ignore[operator]


def chat_body(p: Probe, prompt: str = SMALL_PROMPT, copies: int = 1, max_tokens: int = 1,
              stream: bool = False) -> dict[str, Any]:
    if p.attempt:
        # An example run again (properties.Remeasure) chats at another cost: a deployment whose
        # wrong move follows the chat's cost (a hold left standing) moves wrongly again, while
        # another client's one-off spend does not come back.
        prompt = f"{prompt} Once more."
    body: dict[str, Any] = {"model": p.t.chat_model,
                            "messages": [{"role": "user", "content": prompt}] * copies, "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
    return body


def user_chat(p: Probe, user: str, body: dict[str, Any], accept: str | None = None) -> Exchange:
    """POST /v1/users/{id}/chat/completions (a valid chat: see :func:`_chat`), with an Accept
    header when given."""
    headers = {"Accept": accept} if accept else None
    send = lambda b: p.t.send(USER_CHAT, path={"external_user_id": user}, body=b, headers=headers)  # noqa: E731
    return _chat(p, _with_a_known_model(p, body, send), user_billed=True)


def header_chat(p: Probe, user: str | None, body: dict[str, Any]) -> Exchange:
    """POST /v1/chat/completions, naming the user in the header (or the developer: None)."""
    headers = {p.t.facts.user_header: user} if user is not None else {}
    send = lambda b: p.t.send(CHAT, headers=headers, body=b)  # noqa: E731
    return _chat(p, _with_a_known_model(p, body, send), user_billed=user is not None)


def _with_a_known_model(p: Probe, body: dict[str, Any], send: Callable[[dict[str, Any]], Exchange]) -> Exchange:
    """Send a chat; if the deployment refuses its model as unknown (the docs name no model, and
    a gateway may route only some), send it again naming the next model openapi.yaml shows,
    which the rest of the run then names too. A refused chat applied nothing."""
    exchange = send(body)
    while isinstance(body.get("model"), str) and _model_refused(exchange, body["model"]):
        model = p.t.model_after_refusal(body["model"])
        if model is None or model == body["model"]:
            return exchange
        body = {**body, "model": model}
        exchange = send(body)
    return exchange


def _model_refused(exchange: Exchange, model: str) -> bool:
    """400, 403, 404 or 422 in the envelope, about the model: its code or message says "model", or the
    message names the model sent (OpenAI answers an unknown model 404 model_not_found, "The
    model `x` does not exist or you do not have access to it"; a gateway, "`x` is not enabled")."""
    if exchange.status not in (400, 403, 404, 422) or not isinstance(exchange.error_code, str):
        return False
    message = exchange.field("error", "message")
    text = f"{exchange.error_code} {message if isinstance(message, str) else ''}"
    return "model" in text.lower() or model in text


def _chat(p: Probe, exchange: Exchange, user_billed: bool) -> Exchange:
    """A valid chat's answer. The probe is skipped when the account's billing mode refused it
    as the docs allow (400 bad_request on the wrong billing endpoint: conformance.billing_mode),
    and when the provider or the service failed as the docs list (502, 503, 504 in the error
    envelope, which errors.envelope checks): a write is never retried, and one failure of the
    provider says nothing of the deployment."""
    _unless_unavailable(p, exchange, "chat")
    if refused_as_wrong_endpoint(p.t.billing_mode, user_billed, exchange.status, exchange.error_code):
        p.skip(wrong_endpoint_reason(p.t.billing_mode() or ""))
    return exchange


def me(p: Probe) -> Exchange:
    return p.t.send(ME)


def quota_micros(exchange: Exchange) -> int | None:
    """``quota.credits_used`` of a chat answer (micro-dollars), when it is an integer."""
    value = exchange.field("quota", "credits_used")
    return json_integer(value)
