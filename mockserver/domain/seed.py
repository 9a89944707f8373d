"""Reading a seed: the JSON/YAML document that sets up a store's starting state.

The same format serves ``quota-mock --seed FILE``, ``POST /_mock/seed`` and the pytest
fixture. Amounts are dollars (``"5.00"``, ``5``, ``"$5.00"``); prices are dollars per
million tokens. Anything malformed is refused with a message naming the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from .accounts import Developer, ModelPrice, PriceTable, Seed
from .errors import MAX_SAFE_MICRODOLLARS
from .money import MoneyError, dollars_to_micros, format_money

_TOP_LEVEL = {"developer", "api_keys", "pool", "users", "prices"}
_DEVELOPER_FIELDS = {"id", "email", "plan", "billing_mode"}
_BILLING_MODES = {"developer", "user", "test"}
# What a client can send after "Authorization: Bearer ": one run of visible ASCII characters.
# A key with a space, a control character or a non-ASCII letter can never authenticate (the
# header's token ends at the first space; header bytes are not read as UTF-8 here).
_SENDABLE_API_KEY = re.compile(r"[\x21-\x7e]+")


def api_key_problem(key: Any) -> str | None:
    """Why ``key`` cannot be an API key (no client could send it), or None."""
    if not isinstance(key, str) or not key.strip():
        return "an API key must be a non-empty string"
    if _SENDABLE_API_KEY.fullmatch(key) is None:
        return (
            f"API key {ascii(key)[:60]} cannot be sent as 'Authorization: Bearer <key>': "
            "use visible ASCII characters only (no spaces, control or non-ASCII characters)"
        )
    return None


class SeedError(ValueError):
    """A seed document that cannot be used; the message names the field."""


def read_seed_file(path: str | Path) -> dict[str, Any]:
    """Parse a seed file (JSON or YAML) into a plain mapping."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_seed_text(text, source=str(path))


def parse_seed_text(text: str, source: str = "seed") -> dict[str, Any]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SeedError(f"{source} is neither JSON nor YAML: {exc}") from exc
    if not isinstance(document, dict):
        raise SeedError(f"{source} must be a mapping at the top level")
    # Reparse JSON-looking input exactly: YAML would read 0.1 as a binary float.
    if text.lstrip().startswith("{"):
        try:
            document = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            raise SeedError(f"{source} is not valid JSON: {exc}") from exc
    return document


def build_seed(
    document: Mapping[str, Any],
    base: Seed | None = None,
    user_id_problem: Callable[[str], str | None] | None = None,
) -> Seed:
    """Build a :class:`Seed` from a document; fields it leaves out come from ``base``.

    ``user_id_problem`` says why a user id is refused (the contract's rule, which this pure
    module does not read itself), or None.
    """
    unknown = set(document) - _TOP_LEVEL
    if unknown:
        raise SeedError(f"unknown seed field(s): {', '.join(sorted(unknown))}")
    base = base or Seed(developer=Developer(), api_keys=(), pool=0)
    developer = _developer(document.get("developer"), base.developer)
    api_keys = base.api_keys
    if "api_keys" in document:
        keys = document["api_keys"]
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k.strip() for k in keys):
            raise SeedError("api_keys must be a non-empty list of non-empty strings")
        for key in keys:
            problem = api_key_problem(key)
            if problem is not None:
                raise SeedError(f"api_keys: {problem}")
        api_keys = tuple(keys)
    pool = _amount(document["pool"], "pool") if "pool" in document else base.pool
    users = dict(base.users)
    if "users" in document:
        raw_users = document["users"]
        if not isinstance(raw_users, Mapping):
            raise SeedError("users must map external user ids to dollar balances")
        users = {}
        for user_id, balance in raw_users.items():
            if not isinstance(user_id, str) or not user_id:
                raise SeedError(f"users: {user_id!r} is not a valid external user id")
            problem = user_id_problem(user_id) if user_id_problem is not None else None
            if problem is not None:
                raise SeedError(f"users: {problem}")
            users[user_id] = _amount(balance, f"users.{user_id}")
    prices = _prices(document["prices"], base.prices) if "prices" in document else base.prices
    return Seed(developer=developer, api_keys=api_keys, pool=pool, users=users, prices=prices)


def _developer(raw: Any, base: Developer) -> Developer:
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise SeedError("developer must be a mapping")
    unknown = set(raw) - _DEVELOPER_FIELDS
    if unknown:
        raise SeedError(f"unknown developer field(s): {', '.join(sorted(unknown))}")
    fields = {name: getattr(base, name) for name in _DEVELOPER_FIELDS}
    for name in _DEVELOPER_FIELDS & set(raw):
        if not isinstance(raw[name], str) or not raw[name]:
            raise SeedError(f"developer.{name} must be a non-empty string")
        fields[name] = raw[name]
    if fields["billing_mode"] not in _BILLING_MODES:
        raise SeedError(f"developer.billing_mode must be one of {sorted(_BILLING_MODES)}")
    return Developer(**fields)


def _prices(raw: Any, base: PriceTable) -> PriceTable:
    if not isinstance(raw, Mapping):
        raise SeedError("prices must be a mapping")
    markup = raw.get("markup_percent", base.markup_percent)
    if isinstance(markup, bool) or not isinstance(markup, int) or not 0 <= markup <= 1000:
        raise SeedError("prices.markup_percent must be an integer from 0 to 1000")
    default = _model_price(raw["default"], "prices.default") if "default" in raw else base.default
    models = dict(base.models)
    for name, price in (raw.get("models") or {}).items():
        models[str(name)] = _model_price(price, f"prices.models.{name}")
    return PriceTable(models=models, default=default, markup_percent=markup)


def _model_price(raw: Any, where: str) -> ModelPrice:
    if not isinstance(raw, Mapping) or set(raw) != {"input", "output"}:
        raise SeedError(f"{where} must have exactly 'input' and 'output' (dollars per million tokens)")
    return ModelPrice(_amount(raw["input"], f"{where}.input"), _amount(raw["output"], f"{where}.output"))


def _amount(raw: Any, where: str) -> int:
    try:
        if isinstance(raw, float):
            # YAML floats: their shortest spelling is what the author wrote.
            micros = dollars_to_micros(Decimal(repr(raw)))
        elif isinstance(raw, (str, int, Decimal)) and not isinstance(raw, bool):
            micros = dollars_to_micros(raw)
        else:
            raise SeedError(f"{where} must be a dollar amount, not {type(raw).__name__}")
    except MoneyError as exc:
        raise SeedError(f"{where}: {exc}") from exc
    if micros < 0:
        raise SeedError(f"{where} must not be negative")
    if micros > MAX_SAFE_MICRODOLLARS:
        # Every store holds it exactly (Redis' doubles are the narrowest), and so do views.
        raise SeedError(f"{where} exceeds the largest balance a store holds ({format_money(MAX_SAFE_MICRODOLLARS)})")
    return micros
