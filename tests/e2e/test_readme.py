"""The README's commands are executed, so that they cannot rot."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
CI_RUN = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text(encoding="utf-8")


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_the_two_setup_commands_are_there_and_ci_runs_the_test_command():
    start, test = sh_blocks()[:2]
    assert start.strip().endswith("pip install . && quota-mock")
    assert test.strip().endswith("pip install -e '.[test]' && python -m pytest -q")
    # The test command verbatim, as its own line of .ci/run.
    assert test.strip() in CI_RUN.splitlines()


def test_the_setup_says_the_mock_blocks_and_tests_get_their_own_environment():
    start, test = sh_blocks()[:2]
    assert "serves in the foreground" in README and "Ctrl-C" in README
    start_env = re.search(r"python3 -m venv (\S+)", start).group(1)
    test_env = re.search(r"python3 -m venv (\S+)", test).group(1)
    # Installing the test dependencies never reinstalls the package under a running mock.
    assert start_env != test_env and f". {test_env}/bin/activate" in test
    ignored = (Path(__file__).resolve().parents[2] / ".gitignore").read_text(encoding="utf-8").split()
    assert f"{test_env}/" in ignored


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_frontend_curl_example_answers_as_the_readme_says(live_mock):
    block = next(b for b in sh_blocks() if b.lstrip().startswith("curl"))
    command = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
    command = command.replace("http://127.0.0.1:8080", live_mock.base_url)
    output = subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True, timeout=30).stdout
    shown = json.loads(
        "".join(line.lstrip("# ") for line in block.splitlines() if line.startswith("#")).replace("ledg_…", "ledg_x")
    )
    answer = json.loads(output)
    assert answer["ledger_id"].startswith("ledg_")
    assert {**answer, "ledger_id": "ledg_x"} == shown


def test_the_fixture_helpers_are_listed_with_their_return_types():
    from mockserver.pytest_plugin import QuotaMock

    table = README.split("The fixture's value is a `mockserver.pytest_plugin.QuotaMock`:", 1)[1].split("\n\n", 2)[1]
    listed: dict[str, str] = {}
    for row in table.splitlines()[2:]:
        names, returns = (cell.strip() for cell in row.strip("|").split("|")[:2])
        for name in re.findall(r"`(\w+)[(`]", names):
            listed[name] = re.match(r"`([^`]+)`", returns).group(1)
    public = {name: member for name, member in vars(QuotaMock).items() if not name.startswith("_")}
    assert set(listed) == set(public)
    for name, member in public.items():
        function = member.fget if isinstance(member, property) else member
        assert listed[name] == function.__annotations__["return"], name

