"""Stoplight Spectral's OpenAPI ruleset finds nothing in the contract: no errors, no warnings.

Spectral is an npm package; it is installed into ``.ci/node`` (never globally) on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_PREFIX = ROOT / ".ci" / "node"
SPECTRAL = NODE_PREFIX / "node_modules" / ".bin" / "spectral"
SPECTRAL_PACKAGE = "@stoplight/spectral-cli@6"


def _spectral() -> Path:
    if SPECTRAL.exists():
        return SPECTRAL
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI"):
            pytest.fail("npm is needed in CI to install Spectral")
        pytest.skip("npm is not installed, so Spectral cannot be installed")
    NODE_PREFIX.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(NODE_PREFIX), "--no-audit", "--no-fund", "--loglevel=error", SPECTRAL_PACKAGE],
        check=True,
        timeout=600,
    )
    return SPECTRAL


@pytest.mark.parametrize("document", ["openapi.yaml", "mockserver/admin-openapi.yaml"])
def test_spectral_oas_ruleset_reports_nothing(document):
    spectral = _spectral()
    result = subprocess.run(
        [str(spectral), "lint", document, "--ruleset", ".spectral.yaml", "--format", "json", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    findings = json.loads(result.stdout or "[]")
    described = [f"{f['code']} ({f['severity']}) at {'.'.join(map(str, f['path']))}: {f['message']}" for f in findings]
    assert described == [], "\n".join(described)
    assert result.returncode == 0, result.stderr
