"""Finding (or installing) the load generator and the peer: wrk and Stoplight Prism."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NODE_PREFIX = ROOT / ".ci" / "node"
PRISM = NODE_PREFIX / "node_modules" / ".bin" / "prism"
PRISM_PACKAGE = "@stoplight/prism-cli@5"


def find_wrk() -> str:
    """wrk from Debian's packages; installed with apt-get when missing (CI runs as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found


def find_prism() -> str | None:
    """Prism from npm, installed into .ci/node (never globally); None without npm."""
    if PRISM.exists():
        return str(PRISM)
    npm = shutil.which("npm")
    if npm is None:
        return None
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", "--loglevel=error", PRISM_PACKAGE],
        check=True,
        timeout=900,
    )
    return str(PRISM) if PRISM.exists() else None


def prism_version(prism: str) -> str:
    result = subprocess.run([prism, "--version"], capture_output=True, text=True, timeout=60)
    return result.stdout.strip() or "unknown"
