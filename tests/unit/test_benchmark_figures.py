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
