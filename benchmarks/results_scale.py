"""RESULTS.md's sections on scale: growth curves, memory per user and entry, the Redis store."""

from __future__ import annotations

from typing import Any


def growth_section(growth: dict[str, Any]) -> list[str]:
    if not growth:
        return []
    stores = [store for store in ("memory", "redis") if growth.get(store)]
    lines = [
        "## Growth curves (in-process, median µs a request)",
        "",
        "The ledger filled through the store (a grant to one of 1,000 users, a chat charge every"
        " 100th entry), then requests sent straight into the WSGI app: no server, no network.",
        "",
        "| entries | " + " | ".join(f"{store}: grant | {store}: `/v1/me` | {store}: dashboard.json" for store in stores)
        + " |",
        "| --- |" + " --- | --- | --- |" * len(stores),
    ]
    for row in zip(*(growth[store] for store in stores), strict=True):
        cells = [f"{row[0]['entries']:,}"]
        for point in row:
            cells += [f"{point['grant_us']:,.0f}", f"{point['me_us']:,.0f}", f"{point['dashboard_us']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    per_user = growth.get("per_user")
    if per_user:
        lines += [
            "",
            f"Memory, memory store: {per_user['bytes_per_entry']:.0f} bytes per ledger entry (usage running"
            f" totals included) and {per_user['bytes_per_user']:.0f} bytes per user (measured over"
            f" {per_user['users']:,} grants to as many users).",
        ]
    return [*lines, ""]


def redis_section(cost: dict[str, Any]) -> list[str]:
    if not cost:
        return []
    commands = ", ".join(f"{name} {count:g}" for name, count in cost["commands"].items() if count >= 0.5)
    return [
        "## A grant on the Redis store",
        "",
        f"Measured in-process over {cost['grants']:,} grants with fresh keys (`python -m benchmarks.redis_cost`):",
        "",
        f"- round trips to Redis per grant: {cost['round_trips_per_grant']:.2f} (one script: the shared clock's"
        " offset, the key's claim, the money, the ledger entry, the usage totals and the key's record);",
        f"- commands Redis runs per grant: {cost['redis_commands_per_grant']:.1f} ({commands});",
        f"- time: {cost['redis_grant_microseconds']:,.0f} µs a grant through the domain service, of which Redis"
        f" spends {cost['redis_script_microseconds']:,.0f} µs running the script; the memory store takes"
        f" {cost['memory_grant_microseconds']:,.0f} µs;",
        f"- Redis memory: {cost['redis_bytes_per_keyed_grant']:,.0f} bytes per grant with a key (its key record"
        " for 24 hours, its ledger entry, its usage entry).",
        "",
    ]
