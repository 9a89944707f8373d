"""Run the suite against Stoplight Prism serving openapi.yaml: a stateless mock.

Prism answers every request from the contract's examples and schemas, so the per-response
schema checks pass, while everything that needs state (a replay credited once, a balance
read showing the grant) fails: the difference between a contract-shaped fake and a faithful
one. Install Prism locally first (never globally):

    npm install --prefix .ci/node --no-save @stoplight/prism-cli@5
    python -m conformance.prism_demo
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from mockserver.contract import contract_path

from .options import Options
from .report import human
from .runner import RunReport, run

DEMO_KEY = "sk-quota-your-api-key"
REPO = Path(__file__).resolve().parent.parent


def prism_command() -> list[str] | None:
    """The Prism executable: $PRISM, the repository's .ci/node install, or None."""
    explicit = os.environ.get("PRISM")
    if explicit:
        return [explicit]
    local = REPO / ".ci" / "node" / "node_modules" / ".bin" / "prism"
    if local.exists() and shutil.which("node"):
        return [str(local)]
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_against_prism(max_examples: int = 4, seed: int = 1, timeout: float = 60.0) -> RunReport:
    command = prism_command()
    if command is None:
        raise FileNotFoundError(
            "Prism is not installed: npm install --prefix .ci/node --no-save @stoplight/prism-cli@5")
    port = _free_port()
    process = subprocess.Popen(  # noqa: S603 - a fixed local executable and arguments
        [*command, "mock", str(contract_path()), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                requests.get(base_url + "/v1/packages", timeout=2)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("Prism did not start") from None
                time.sleep(0.3)
        return run(Options(api_key=DEMO_KEY, base_url=base_url, max_examples=max_examples, seed=seed))
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    try:
        report = run_against_prism()
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(human(report.summary, DEMO_KEY, verbose=False))
    return report.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
