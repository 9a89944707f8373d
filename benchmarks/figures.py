"""The README's performance figures, taken from one benchmark run and kept in step with it.

``python -m benchmarks.run`` writes RESULTS.md, the headline figures as
``benchmarks/figures.json``, and the README's block between the markers below, rendered from
that file; a test renders the block again from the file and compares, so the README cannot
drift from the last run.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FIGURES_PATH = Path(__file__).resolve().parent / "figures.json"
README_PATH = ROOT / "README.md"
BEGIN = "<!-- benchmark-figures:begin (written by python -m benchmarks.run from benchmarks/figures.json) -->"
END = "<!-- benchmark-figures:end -->"
_BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)


def readme_block(f: dict[str, Any]) -> str:
    """The README's figures, as sentences."""
    return "\n".join(
        [
            BEGIN,
            f"Measured {f['measured']} on this {f['cores']}-core machine, in one run"
            f"{_host(f.get('host_stolen'))}"
            " ([benchmarks/RESULTS.md](benchmarks/RESULTS.md) has every figure): grants run at"
            f" {f['grant_rps']:,.0f}/s on the memory store with p99 {f['grant_p99_ms']:.1f} ms, that is"
            f" {f['vs_prism']:.2f} × Stoplight Prism and {f['vs_bare']:.2f} × bare Flask under the same server;"
            f" on eight threads {f['threads8_rps']:,.0f}/s with p99 {f['threads8_p99_ms']:.1f} ms (threads"
            f" contend for the GIL). On Redis, one worker runs {f['redis1_rps']:,.0f} grants/s"
            f" ({f['redis1_vs_memory']:.2f} × the memory store) and two {f['redis2_rps']:,.0f}/s"
            f" ({f['redis2_vs_redis1']:.2f} × one{_busy(f.get('redis2_machine_busy'), f['cores'])}{_held(f)})"
            f"{_unix(f)}{_no_journal(f)};"
            f" a grant there is {f['redis_round_trips']:.0f} round trip"
            f" and {f['redis_commands']:.0f} Redis commands. `GET /v1/me` costs {f['me_us_empty']:,.0f} µs"
            f" in-process on an empty mock and {f['me_us_large']:,.0f} µs at {f['large_entries']:,} ledger"
            f" entries. Memory: {f['bytes_per_entry']:.0f} bytes per ledger entry, {f['bytes_per_user']:.0f}"
            f" per user, {f['bytes_per_key']:.0f} per stored Idempotency-Key (a 36-character key included),"
            f" so the default bound of {f['max_keys']:,} keys takes {f['bytes_per_key'] * f['max_keys'] / 1e6:.0f}"
            " MB when full.",
            END,
        ]
    )


def _host(stolen: float | None) -> str:
    if stolen is None:
        return ""
    return (f" (a virtual machine: its host took {stolen:.0%} of the CPU time during the load, so absolute"
            " figures differ from run to run; ratios are taken within the run)")  # fmt: skip


def _unix(f: dict) -> str:
    """One worker over a unix socket, where the run measured it."""
    if not f.get("redis_unix1_rps"):
        return ""
    rps, ratio = f["redis_unix1_rps"], f["redis_unix1_vs_memory"]
    return f", and one over a unix socket {rps:,.0f}/s ({ratio:.2f} × the memory store)"


def _no_journal(f: dict) -> str:
    """One worker with its request journal off, where the run measured it."""
    if not f.get("redis_no_journal1_rps"):
        return ""
    rps, ratio = f["redis_no_journal1_rps"], f["redis_no_journal1_vs_memory"]
    return f"; with its request journal off (`--journal-size 0`) one worker runs {rps:,.0f}/s ({ratio:.2f} ×)"


def _held(f: dict) -> str:
    """Two workers against one with each worker held to the same share of a core, where measured."""
    if f.get("redis2_vs_redis1_held") is None:
        return ""
    return (f"; with each worker held to {f['worker_share']:g} of a core, so that the machine has room for"
            f" both, two run {f['redis2_vs_redis1_held']:.2f} × one")


def _busy(share: float | None, cores: int) -> str:
    if share is None:
        return ""
    return f", the machine then {share:.0%} busy: its {cores} cores serve the workers, redis-server and wrk"


def write(figures: dict[str, Any]) -> None:
    """Keep ``figures`` and put their block into the README (which must hold the markers)."""
    FIGURES_PATH.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    readme = README_PATH.read_text(encoding="utf-8")
    if not _BLOCK.search(readme):
        raise SystemExit(f"README.md has no {BEGIN!r} ... {END!r} block")
    README_PATH.write_text(_BLOCK.sub(lambda _: readme_block(figures), readme), encoding="utf-8")


def readme_matches() -> tuple[str, str]:
    """The README's block and the block the kept figures render to (equal when in step)."""
    figures = json.loads(FIGURES_PATH.read_text(encoding="utf-8"))
    found = _BLOCK.search(README_PATH.read_text(encoding="utf-8"))
    return (found.group(0) if found else ""), readme_block(figures)
