"""The starting state of the domain tests."""

from mockserver.domain.accounts import Developer, ModelPrice, PriceTable, Seed

SEED = Seed(
    developer=Developer(),
    api_keys=("sk-quota-test",),
    pool=100_000_000,
    users={"alice": 5_000_000, "broke": 0},
    prices=PriceTable(
        models={"m": ModelPrice(1_000_000, 2_000_000)}, default=ModelPrice(500_000, 1_500_000), markup_percent=10
    ),
)
