"""The README's recipes for each user are executed, and the CI example runs the real CLI.

Every ``sh`` block after the set-up commands and the first curl example (tested in
test_readme.py) runs with bash against a live ``quota-mock``, reset before each block; each
line ``# → TEXT`` in a block must appear in what the block prints.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from mockserver.server import free_port

from .conftest import LiveMock, start_quota_mock
from .test_readme import sh_blocks

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "examples" / "github-actions-conformance.yml"
# Stock Schemathesis runs for a minute: tests/e2e/test_stock_schemathesis.py runs that recipe.
RECIPES = [block for block in sh_blocks() if "# →" in block and " st run " not in block]


@pytest.fixture(scope="module")
def mock() -> Iterator[LiveMock]:
    live = start_quota_mock("--quiet")
    yield live
    live.stop()


def test_every_recipe_section_has_executed_commands():
    assert len(RECIPES) >= 8
    for needle in ("OPTIONS", "Prefer: code=402", "/_mock/faults", "--rate-limit", "/_mock/", "quota_mock"):
        assert any(needle in block for block in RECIPES), needle
    assert any("quota-conformance" in block for block in RECIPES)


@pytest.mark.parametrize("block", RECIPES, ids=lambda block: block.splitlines()[0][:50])
def test_the_readme_recipe_runs_and_prints_what_it_says(block, mock, tmp_path):
    requests.post(mock.base_url + "/_mock/reset", timeout=5).raise_for_status()
    script = block.replace("http://127.0.0.1:8080", mock.base_url).replace("8081", str(free_port()))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    expected_lines = re.findall(r"^# → (.*)$", block, flags=re.M)
    commands = [c for c in re.sub(r"\\\n", " ", block).splitlines() if c.strip() and not c.startswith("#")]
    if len(commands) == 1 and " | grep " in commands[0]:
        # A single command whose output grep filters is shown whole: every line, and only those.
        assert result.stdout.splitlines() == expected_lines, output
    for expected in expected_lines:
        assert expected in output, f"{expected!r} not in:\n{output}"


def _conformance_step() -> dict:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    return next(step for step in steps if "quota-conformance" in step.get("run", ""))


def test_the_ci_example_runs_the_real_cli_with_flags_that_exist():
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    step = _conformance_step()
    assert step["env"]["QUOTA_API_KEY"] == "${{ secrets.QUOTA_API_KEY }}"  # the key from a secret
    command = re.sub(r"\$\{\{[^}]*\}\}", "X", step["run"])
    argv = shlex.split(command)
    assert argv[0] == "quota-conformance"
    assert "--api-key" not in argv  # never on the command line, where logs would show it
    assert argv[argv.index("--base-url") + 1] == "X" and "secrets.QUOTA_BASE_URL" in step["run"]
    help_text = subprocess.run(
        [str(Path(sys.executable).parent / "quota-conformance"), "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    for flag in (arg for arg in argv if arg.startswith("--")):
        assert re.search(rf"(^|\s){re.escape(flag)}(\s|$|,)", help_text), f"{flag} is not an option"
    from conformance.cli import build_parser

    build_parser().parse_args(argv[1:])  # and they parse, with their values
    report = argv[argv.index("--junit-xml") + 1]
    steps = [s for job in workflow["jobs"].values() for s in job["steps"]]
    published = [s for s in steps if "junit" in s.get("uses", "") and s.get("if") == "always()"]
    assert published and published[0]["with"]["report_paths"] == report
    uploads = [s for s in steps if "upload-artifact" in s.get("uses", "")]
    assert any(report in str(s["with"]["path"]) for s in uploads)
    assert any("pip install" in s.get("run", "") and "quota-contract-kit" in s["run"] for s in steps)
