"""Usage is kept as money moves, on both stores, and always equals a full recomputation from
the ledger: over generated histories of grants, charges and adjustments, with the clock moved
forward and back, for the 30-day window and for windows whose edges fall exactly on entries."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mockserver.domain.clock import Clock
from mockserver.domain.errors import StoreError
from mockserver.domain.usage import USAGE_WINDOW_SECONDS, summarize
from mockserver.domain.usage_index import UsageIndex

from .seeds import SEED

T0 = 1_800_000_000.0
DAY = 86_400.0


class ManualClock(Clock):
    """Time that moves only when told: the history decides every entry's time."""

    def __init__(self, now: float) -> None:
        super().__init__()
        self.at = now

    def now(self) -> float:
        return self.at


users = st.sampled_from(["alice", "broke", "carol", "dave"])
models = st.sampled_from(["m", "gpt-4o-mini", "", "x:y"])
moves = st.one_of(
    st.sampled_from([0.0, 0.25, 1.0, 60.0, 3600.0, DAY, 29 * DAY, 30 * DAY, 31 * DAY, -1.0, -3600.0, -31 * DAY]),
    st.floats(min_value=-40 * DAY, max_value=40 * DAY, allow_nan=False, allow_infinity=False),
)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("grant"), users, st.integers(1, 10**10)),
        st.tuples(st.just("charge"), st.one_of(st.none(), users), models, st.integers(0, 5000), st.integers(0, 5000)),
        st.tuples(st.just("set"), st.one_of(st.none(), users), st.integers(0, 10**9)),
        st.tuples(st.just("move"), moves),
    ),
    max_size=40,
)


def play(store, clock: ManualClock, history) -> None:
    for step in history:
        try:
            if step[0] == "grant":
                store.apply_grant(step[1], step[2], None, clock.now(), None)
            elif step[0] == "charge":
                _, user, model, prompt, completion = step
                store.apply_charge(user, prompt + 2 * completion, model, prompt, completion, clock.now())
            elif step[0] == "set":
                store.set_balance(step[1], step[2], clock.now(), "test")
            else:
                clock.at += step[1]
        except StoreError:
            pass  # a refused step moves nothing, in the ledger or in the usage


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=steps, edges=st.lists(st.integers(0, 60), min_size=2, max_size=2))
def test_usage_equals_a_full_recomputation_from_the_ledger(store_factory, history, edges):
    store = store_factory()
    clock = ManualClock(T0)
    store.load(SEED, clock.now())
    play(store, clock, history)
    ledger = store.ledger()

    overview = store.overview(clock)
    now = clock.now()
    assert overview.pool == store.pool_balance()
    assert overview.usage == summarize(ledger, now - USAGE_WINDOW_SECONDS, now)
    # Windows whose edges are entries' own times: exactness at the boundary.
    times = sorted(entry.at for entry in ledger)
    since, until = sorted(times[edge % len(times)] for edge in edges)
    assert store.usage(since, until) == summarize(ledger, since, until)
    assert store.usage(until, since) == summarize(ledger, until, since)


def test_running_totals_stay_exact_past_64_bits():
    index = UsageIndex()
    for _ in range(3):
        index.add_grant(1.0, 2**62)
    summary = index.summary(0.0, 2.0)
    assert (summary.grant_count, summary.grant_total) == (3, 3 * 2**62)
