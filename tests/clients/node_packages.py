"""Node.js and npm packages for the client tests, installed into ``.ci/node`` (never globally)
on first use. Without Node.js and npm a test is skipped, saying so, except in CI (``CI=true``),
where it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_PREFIX = ROOT / ".ci" / "node"


def node_with(*packages: str) -> str:
    """The node executable, with ``packages`` (npm specs such as ``openai@6``) installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        if os.environ.get("CI"):
            pytest.fail(f"node and npm are needed in CI to run {', '.join(packages)}")
        pytest.skip(f"Node.js and npm are not installed, so {', '.join(packages)} cannot run")
    missing = [spec for spec in packages if not (NODE_PREFIX / "node_modules" / _name(spec) / "package.json").exists()]
    if missing:
        NODE_PREFIX.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", "--loglevel=error", *missing],
            check=True,
            timeout=600,
        )
    return node


def _name(spec: str) -> str:
    """``openai@6`` -> ``openai``; ``@scope/pkg@1`` -> ``@scope/pkg``."""
    head, _, _ = spec[1:].partition("@")
    return spec[0] + head
