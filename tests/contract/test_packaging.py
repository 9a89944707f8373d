"""A built wheel carries the contract, the default seed, the control API's spec and the
dashboard's templates, and a non-editable install finds the contract inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
    )
    return next(out.glob("quota_contract_kit-*.whl"))


def test_the_wheel_ships_the_contract_and_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "mockserver/openapi.yaml",
        "mockserver/default_seed.yaml",
        "mockserver/admin-openapi.yaml",
        "mockserver/templates/dashboard.html",  # the dashboard renders from the installed package
        "mockserver/templates/_live.html",
    ):
        assert required in names
    packaged = zipfile.ZipFile(wheel).read("mockserver/openapi.yaml")
    assert packaged == (ROOT / "openapi.yaml").read_bytes()


def test_an_installed_wheel_loads_its_own_contract(wheel, tmp_path):
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = (
        "from mockserver.contract import contract_path, default_contract;"
        "print(contract_path()); print(len(default_contract().operations))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    path, operations = result.stdout.split()
    assert Path(path).is_relative_to(site)
    assert operations == "7"
