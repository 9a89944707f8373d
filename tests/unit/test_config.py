"""MockConfig checks every rule in one place, the command line's own included."""

import argparse

import pytest

from mockserver.cli import build_parser, config_from_args
from mockserver.config import HOLDING_THREADS, REDIS_THREADS, ConfigError, MockConfig


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"host": "0.0.0.0"}, "--admin-token"),
        ({"workers": 2}, "--workers 2 needs a shared store"),
        ({"workers": 0}, "--workers must be at least 1"),
        ({"threads": 0}, "--threads must be at least 1"),
        ({"threads": "4"}, "threads must be a whole number"),
        ({"pool": "lots"}, "pool"),
        ({"rate_limit": "often"}, "often"),
        ({"stream_chunk_delay_ms": -1}, "stream_chunk_delay_ms must be from 0 to 30000"),
        ({"stream_chunk_delay_ms": 30_001}, "stream_chunk_delay_ms must be from 0 to 30000"),
    ],
)
def test_every_rule_is_the_configurations_own(settings, reason):
    with pytest.raises(ConfigError, match=reason):
        MockConfig.from_mapping(settings)


def test_off_loopback_is_fine_with_a_token_or_without_the_control_api():
    assert MockConfig.from_mapping({"host": "0.0.0.0", "admin_token": "t"}).host == "0.0.0.0"
    assert MockConfig.from_mapping({"host": "0.0.0.0", "admin_enabled": False}).admin_enabled is False


def test_threads_default_to_one_and_to_more_when_grants_are_held_or_wait_for_redis():
    assert MockConfig().server_threads == 1
    assert MockConfig(grant_delay_seconds=1.0).server_threads == HOLDING_THREADS
    assert MockConfig(stream_chunk_delay_ms=50).server_threads == HOLDING_THREADS
    assert MockConfig(store="redis://127.0.0.1:6379/0").server_threads == REDIS_THREADS == 3
    assert MockConfig(store="redis://127.0.0.1:6379/0", grant_delay_seconds=1.0).server_threads == HOLDING_THREADS
    assert MockConfig(store="redis://127.0.0.1:6379/0", threads=1).server_threads == 1
    assert MockConfig(threads=3, grant_delay_seconds=1.0).server_threads == 3


def test_the_command_line_only_translates_and_leaves_its_arguments_alone():
    args = build_parser().parse_args(["--grant-delay", "2", "--rate-limit", "5/s"])
    before = argparse.Namespace(**vars(args))
    config = config_from_args(args)
    assert args == before
    assert config.server_threads == HOLDING_THREADS
    # Options not given keep the configuration's defaults, written once in MockConfig.
    defaults = MockConfig()
    assert (config.host, config.port, config.store, config.store_prefix, config.workers) == (
        defaults.host,
        defaults.port,
        defaults.store,
        defaults.store_prefix,
        defaults.workers,
    )


def test_settings_are_parsed_once():
    config = MockConfig.from_mapping({"rate_limit": "100/min", "pool": "$12.50"})
    assert config.parsed_rate_limit is config.parsed_rate_limit
    assert config.pool_microdollars == 12_500_000
    assert config.build_seed().pool == 12_500_000
