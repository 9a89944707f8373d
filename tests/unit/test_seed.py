import pytest

from mockserver.config import default_seed_document
from mockserver.domain.seed import SeedError, build_seed, parse_seed_text


def test_the_default_seed_is_ready_to_play_with():
    seed = build_seed(default_seed_document())
    assert seed.api_keys == ("sk-quota-your-api-key",)
    assert seed.users["user_123"] == 5_000_000
    assert seed.pool == 1_000_000_000
    assert seed.prices.price_of("gpt-4o-mini").input_per_million == 150_000
    assert seed.prices.markup_percent == 10


def test_partial_seeds_layer_over_a_base():
    base = build_seed(default_seed_document())
    seed = build_seed({"users": {"z": "1.5"}}, base=base)
    assert seed.users == {"z": 1_500_000}
    assert seed.pool == base.pool and seed.api_keys == base.api_keys


def test_json_seeds_keep_decimals_exact():
    document = parse_seed_text('{"pool": 0.1, "users": {"a": 0.29}}')
    seed = build_seed(document)
    assert (seed.pool, seed.users["a"]) == (100_000, 290_000)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"pool": "-1"}, "pool must not be negative"),
        ({"pool": "0.0000001"}, "pool"),
        ({"users": ["a"]}, "users must map"),
        ({"users": {"": "1"}}, "not a valid external user id"),
        ({"api_keys": []}, "api_keys"),
        ({"developer": {"billing_mode": "free"}}, "billing_mode"),
        ({"developer": {"colour": "red"}}, "unknown developer field"),
        ({"prices": {"models": {"m": {"input": "1"}}}}, "exactly 'input' and 'output'"),
        ({"prices": {"markup_percent": -1}}, "markup_percent"),
        ({"extra": 1}, "unknown seed field"),
    ],
)
def test_bad_seeds_name_the_field(document, message):
    with pytest.raises(SeedError, match=message):
        build_seed(document)


def test_text_that_is_not_a_mapping_is_refused():
    with pytest.raises(SeedError):
        parse_seed_text("- just\n- a list\n")
    with pytest.raises(SeedError):
        parse_seed_text("{not json")
