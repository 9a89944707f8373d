"""The developer account, its settings, and the seed that fills a store."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Developer:
    """The developer behind the API keys: the grant pool's owner."""

    id: str = "bc9aac4f-5d2e-4a0c-9f57-2a4f1c3e8b11"
    email: str = "developer@example.com"
    plan: str = "free"
    billing_mode: str = "user"


def wrong_billing_endpoint(billing_mode: str, user_billed: bool) -> str | None:
    """Why a chat is on the wrong billing endpoint for the account's mode (the docs' 400
    bad_request "wrong billing endpoint"), or None. A sandbox ("test") serves both."""
    if billing_mode == "user" and not user_billed:
        return (
            'Wrong billing endpoint: this app bills its users (billing_mode "user"); name the user with '
            "POST /v1/users/{external_user_id}/chat/completions or the X-External-User-ID header"
        )
    if billing_mode == "developer" and user_billed:
        return (
            'Wrong billing endpoint: this app pays for its chats (billing_mode "developer"); send them to '
            "POST /v1/chat/completions without X-External-User-ID"
        )
    return None


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """Base price of a model, in micro-dollars per million tokens."""

    input_per_million: int
    output_per_million: int


@dataclass(frozen=True)
class PriceTable:
    """What a completion costs: base price per model, times ``1 + markup_percent / 100``."""

    models: dict[str, ModelPrice]
    default: ModelPrice
    markup_percent: int = 0

    def price_of(self, model: str) -> ModelPrice:
        return self.models.get(model, self.default)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> int:
        """Effective cost in micro-dollars, rounded up so that no usage is ever free."""
        price = self.price_of(model)
        base_numerator = prompt_tokens * price.input_per_million + completion_tokens * price.output_per_million
        # base_cost * (1 + markup) with everything kept integral until one ceiling division.
        numerator = base_numerator * (100 + self.markup_percent)
        denominator = 1_000_000 * 100
        return -(-numerator // denominator)


@dataclass(frozen=True)
class Seed:
    """A complete starting state: developer, keys, pool, users and prices."""

    developer: Developer
    api_keys: tuple[str, ...]
    pool: int
    users: dict[str, int] = field(default_factory=dict)
    prices: PriceTable = field(default_factory=lambda: PriceTable(models={}, default=ModelPrice(500_000, 1_500_000)))

    def as_json(self) -> dict[str, Any]:
        """The seed as plain JSON (integer micro-dollars): what another worker adopts."""
        return {
            "developer": dataclasses.asdict(self.developer),
            "api_keys": list(self.api_keys),
            "pool": self.pool,
            "users": dict(self.users),
            "prices": {
                "models": {name: [p.input_per_million, p.output_per_million] for name, p in self.prices.models.items()},
                "default": [self.prices.default.input_per_million, self.prices.default.output_per_million],
                "markup_percent": self.prices.markup_percent,
            },
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Seed:
        """The inverse of :meth:`as_json`."""
        prices = document["prices"]
        return cls(
            developer=Developer(**document["developer"]),
            api_keys=tuple(document["api_keys"]),
            pool=int(document["pool"]),
            users={str(user): int(amount) for user, amount in document["users"].items()},
            prices=PriceTable(
                models={name: ModelPrice(int(i), int(o)) for name, (i, o) in prices["models"].items()},
                default=ModelPrice(int(prices["default"][0]), int(prices["default"][1])),
                markup_percent=int(prices["markup_percent"]),
            ),
        )
