"""Stock Schemathesis (`st run`) with the shipped schemathesis.toml finds nothing against the mock.

The README's command is run as a user runs it: the `st` command line, from the project root
(where Schemathesis finds schemathesis.toml), the key in QUOTA_API_KEY, against a live
`quota-mock`. The default test run bounds it (few examples, no coverage phase, which alone
sends some 2,700 requests); ``pytest -m slow`` runs the README's command verbatim.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from mockserver.contract import default_contract

from .conftest import LiveMock, start_quota_mock
from .test_readme import sh_blocks

ROOT = Path(__file__).resolve().parents[2]
DEMO_KEY = "sk-quota-your-api-key"
BOUNDED = ["--max-examples", "5", "--seed", "1", "--phases", "examples,fuzzing,stateful"]


def readme_block() -> str:
    (block,) = [b for b in sh_blocks() if " st run " in f" {b}"]
    return block


def readme_command() -> list[str]:
    """The README's `st run` line, with its environment assignment taken apart."""
    (line,) = [line for line in readme_block().splitlines() if " st run " in line]
    words = shlex.split(line)
    assert words[0].startswith("QUOTA_API_KEY=") and words[1] == "st"
    return words[1:]


@pytest.fixture(scope="module")
def mock() -> Iterator[LiveMock]:
    live = start_quota_mock("--quiet")
    yield live
    live.stop()


def run_st(mock: LiveMock, extra: list[str]) -> str:
    st, *arguments = readme_command()
    arguments = [mock.base_url if a == "http://127.0.0.1:8080" else a for a in arguments]
    result = subprocess.run(
        [str(Path(sys.executable).parent / st), *arguments, *extra],
        cwd=ROOT,  # where Schemathesis finds schemathesis.toml, as in the README
        env={**os.environ, "QUOTA_API_KEY": DEMO_KEY, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=900,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for expected in re.findall(r"^# → (.*)$", readme_block(), flags=re.M):
        assert expected in output, output[-3000:]
    return output


def test_the_readme_command_is_stock_st_with_every_check_and_the_key_from_the_environment():
    assert readme_command()[:5] == ["st", "run", "openapi.yaml", "--url", "http://127.0.0.1:8080"]
    assert readme_command()[5:] == ["--checks", "all"]
    line = next(line for line in readme_block().splitlines() if " st run " in line)
    assert line.startswith("QUOTA_API_KEY=")


def test_the_expected_statuses_are_the_contracts_documented_refusals():
    config = tomllib.loads((ROOT / "schemathesis.toml").read_text(encoding="utf-8"))
    assert config["auth"]["openapi"]["bearerAuth"]["bearer"] == "${QUOTA_API_KEY}"
    contract = default_contract()
    documented = {int(s) for op in contract.operations for s in op.responses} | {
        int(s) for s in contract.global_responses
    }
    refusals = {s for s in documented if 400 <= s < 500}
    assert {s for s in documented if s >= 500} and {s for s in documented if 200 <= s < 300}
    positive = config["checks"]["positive_data_acceptance"]["expected-statuses"]
    negative = config["checks"]["negative_data_rejection"]["expected-statuses"]
    # Valid data: every documented refusal but 400 (invalid), 413 (past the body limit, which
    # no valid body reaches), 415 (a valid body is sent as application/json) and 405 (a
    # method the contract does not define).
    assert positive == ["2xx", *map(str, sorted(refusals - {400, 405, 413, 415})), "5xx"]
    # Invalid data: every documented refusal but 402 (nothing is charged before validation).
    assert negative == list(map(str, sorted(refusals - {402})))


def test_stock_st_run_finds_nothing_against_the_mock(mock):
    output = run_st(mock, BOUNDED)
    assert re.search(r"\d+ generated, \d+ passed", output), output[-2000:]


@pytest.mark.slow
def test_the_readme_command_verbatim_finds_nothing(mock):
    run_st(mock, [])


def test_the_kits_own_code_never_picks_up_the_project_toml():
    """Loading a schema with Schemathesis' Python API reads a schemathesis.toml found in the
    working directory, ours included, which needs QUOTA_API_KEY: the kit's code always
    passes its own ``config=`` instead."""
    loaders = {"from_path", "from_dict", "from_url", "from_file", "from_asgi", "from_wsgi"}
    unconfigured = []
    for folder in ("mockserver", "conformance", "tests", "benchmarks"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr in loaders
                    and ast.unparse(node.func.value).endswith("openapi")
                    and not any(keyword.arg == "config" for keyword in node.keywords)
                ):
                    unconfigured.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not unconfigured, unconfigured

