"""The README's performance figures are the last benchmark run's: `python -m benchmarks.run`
writes benchmarks/figures.json and renders the README block from it; this keeps them in step
without running the benchmark (CI never gates on a timing)."""

from __future__ import annotations

import json

from benchmarks import figures
from benchmarks.results import REDIS_UNIX_1, RESULTS_PATH


def test_the_readme_block_is_rendered_from_the_kept_figures():
    found, rendered = figures.readme_matches()
    assert found, "README.md lost its benchmark-figures block"
    assert found == rendered, "README's figures differ from benchmarks/figures.json: rerun python -m benchmarks.run"


def test_the_kept_figures_are_the_ones_results_md_shows():
    kept = json.loads(figures.FIGURES_PATH.read_text(encoding="utf-8"))
    results = RESULTS_PATH.read_text(encoding="utf-8")
    assert f"| grant (fresh keys) | quota-mock | {kept['grant_rps']:,.0f} |" in results
    assert f"| grant throughput vs Prism | ≥ 3 × | {kept['vs_prism']:.2f} ×" in results
    assert f"{kept['bytes_per_key']:.0f} bytes of resident memory per stored key" in results
    if kept.get("redis_unix1_rps") is not None:  # runs since the unix socket series
        assert f"| grant (fresh keys) | {REDIS_UNIX_1} | {kept['redis_unix1_rps']:,.0f} |" in results


def test_the_redis_account_derives_its_ceiling_from_the_app_cost():
    """RESULTS.md's Redis account computes what one worker's GIL allows from the run's own
    figures: 1 / (the server's share + the app's user time a grant)."""
    from benchmarks.load import LoadResult
    from benchmarks.results_redis import redis_bound
    from benchmarks.server_names import GRANT, MOCK, REDIS_1, REDIS_1_NO_JOURNAL, REDIS_2

    def run(rps: float, cpu: float) -> LoadResult:
        return LoadResult(int(rps * 5), 5.0, 0, 0, 1.0, 2.0, 0.8, cpu, 2.0, 70.0)

    load = {
        MOCK: {GRANT: run(10_000, 140)},
        REDIS_1: {GRANT: run(4_000, 300)},
        REDIS_2: {GRANT: run(5_000, 310)},
        REDIS_1_NO_JOURNAL: {GRANT: run(5_000, 210)},
    }
    cost = {
        "memory": {"user_us": 60, "system_us": 1},
        "memory_no_journal": {"user_us": 50, "system_us": 1},
        "redis": {"user_us": 150, "system_us": 30},
        "redis_no_journal": {"user_us": 100, "system_us": 25},
    }
    text = "\n".join(redis_bound(load, cost, 50e-6))
    assert "can serve at most about 5,000 grants/s" in text  # 1 / (50 + 150 µs)
    assert "0.50 × the memory store's measured 10,000/s" in text
    assert "it measured 4,000/s (80% of that ceiling)" in text
    assert "With the journal off the ceiling is 6,667/s" in text  # 1 / (50 + 100 µs)
    assert "costs 50 µs of Python a grant on Redis against 10 µs on the memory store" in text
    assert "took 20% of that worker's grants" in text  # 1 - 4,000 / 5,000
    assert redis_bound(load, {}, 50e-6) == redis_bound(load)  # no app cost: no ceiling section


def test_the_hosts_share_of_the_machine_comes_from_proc_stat_and_reaches_the_readme():
    from benchmarks.load import _busy_between, _share_between

    before, after = (1000, 400, 10), (1200, 450, 40)  # 200 jiffies: 50 idle, 30 taken by the host
    assert _share_between(before, after, 2) == 0.15
    assert _busy_between(before, after) == 0.75
    assert _share_between(before, before, 2) is None and _busy_between(None, after) is None
    kept = json.loads(figures.FIGURES_PATH.read_text(encoding="utf-8"))
    assert "its host took 20% of the CPU time" in figures.readme_block({**kept, "host_stolen": 0.2})
    assert "its host took" not in figures.readme_block({**kept, "host_stolen": None})



def test_workers_held_to_equal_shares_are_the_scaling_target_and_reach_the_readme():
    """The 0.8 × N goal is judged on the series where each worker is held to the same share of
    a core; the unheld ratio is still reported, without a goal (the machine bounds it)."""
    from benchmarks.load import LoadResult
    from benchmarks.results import Results, worker_scaling
    from benchmarks.results_redis import _held
    from benchmarks.server_names import GRANT, REDIS_1, REDIS_1_CAPPED, REDIS_2, REDIS_2_CAPPED

    def run(rps: float) -> LoadResult:
        return LoadResult(int(rps * 5), 5.0, 0, 0, 1.0, 2.0, 0.6, 300.0, 2.0, 70.0)

    results = Results(rounds=1, seconds=5)
    results.rounds_load = {name: {GRANT: [run(rps)]} for name, rps in
                           ((REDIS_1, 2000), (REDIS_2, 2400), (REDIS_1_CAPPED, 900), (REDIS_2_CAPPED, 1620))}
    held, unheld = worker_scaling(results)
    assert "each worker on 0.5 of a core" in held[0] and held[1:] == ("≥ 1.6 ×", "1.80 ×", True)
    assert unheld[2:] == ("1.20 ×", None)
    assert "One worker served 900 grants/s and two 1,620/s, the machine then 60% busy: 1.80 × one" in \
        " ".join(_held(results.load))
    results.rounds_load[REDIS_2_CAPPED] = {GRANT: [run(1400)]}
    assert worker_scaling(results)[0][1:] == ("≥ 1.6 ×", "1.56 ×", False)
    del results.rounds_load[REDIS_1_CAPPED], results.rounds_load[REDIS_2_CAPPED]  # no cgroups: not measured
    assert worker_scaling(results)[0][2:] == ("n/a", None) and _held(results.load) == []
    kept = json.loads(figures.FIGURES_PATH.read_text(encoding="utf-8"))
    block = figures.readme_block({**kept, "redis2_vs_redis1_held": 1.8, "worker_share": 0.5})
    assert "with each worker held to 0.5 of a core, so that the machine has room for both, two run 1.80 × one" in block
    assert "held to" not in figures.readme_block({**kept, "redis2_vs_redis1_held": None})
