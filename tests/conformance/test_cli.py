"""The command line: exit codes, report files, and the key never shown anywhere."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from conformance.cli import main

from .mutants import KEY, Exchange, base_app, middleware, replay_credits_again

FAST = ["--max-examples", "2", "--seed", "1"]


def test_demo_without_base_url_exits_0(capsys):
    assert main(["--quiet", *FAST]) == 0
    out = capsys.readouterr().out
    assert "embedded quota-mock" in out and "Time taken:" in out and "RESULT: conformant" in out


def test_conformant_target_exits_0_and_writes_reports(served, tmp_path, capsys):
    url = served(base_app())
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code = main(["--base-url", url, "--api-key", KEY, "--junit-xml", str(junit), "--json", str(report), *FAST])
    assert code == 0
    document = json.loads(report.read_text())
    assert document["conformant"] is True and document["counts"]["failed"] == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "0" and int(suite.get("tests")) == len(document["rules"])
    assert {rule["provenance"] for rule in document["rules"]} == {"documented", "contract"}


def test_violations_exit_1_naming_the_check(served, capsys):
    url = served(replay_credits_again())
    assert main(["--base-url", url, "--api-key", KEY, *FAST]) == 1
    out = capsys.readouterr().out
    assert "FAILED       idem.replay" in out and "RESULT: NOT conformant" in out
    assert "curl -X POST" in out


def test_key_from_environment(served, monkeypatch):
    monkeypatch.setenv("QUOTA_API_KEY", KEY)
    assert main(["--base-url", served(base_app()), "--read-only", *FAST]) == 0


@pytest.mark.parametrize(
    "argv",
    [
        ["--budget", "ten dollars"],
        ["--profile", "lenient"],
        ["--max-examples", "0"],
        ["--base-url", "ftp://example.com"],
        ["--base-url", "http://127.0.0.1:9"],  # no key given for a real target
    ],
)
def test_usage_errors_exit_2(argv, monkeypatch):
    monkeypatch.delenv("QUOTA_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2


def test_unreachable_target_exits_2(capsys):
    assert main(["--base-url", "http://127.0.0.1:9", "--api-key", KEY]) == 2
    assert "unreachable" in capsys.readouterr().err


def test_refused_key_exits_2(served, capsys):
    url = served(base_app())
    assert main(["--base-url", url, "--api-key", "sk-quota-not-the-right-key-0000000000"]) == 2
    err = capsys.readouterr().err
    assert "refused the API key" in err and "sk-quota-not-the-right-key" not in err


def echoing_key() -> object:
    """A broken target that echoes the Authorization header into its error messages."""

    def after(ex: Exchange) -> None:
        if ex.status >= 400 or ex.path == "/v1/funding/grant":
            ex.status = 500 if ex.status < 400 else ex.status
            ex.set_json({"error": {"code": f"bad auth {ex.headers.get('Authorization')}", "message": "x"}})

    return middleware(replay_credits_again(), after)


def test_key_is_redacted_everywhere(served, tmp_path, capsys):
    url = served(echoing_key())
    junit, report = tmp_path / "junit.xml", tmp_path / "report.json"
    code = main(["--base-url", url, "--api-key", KEY, "--junit-xml", str(junit), "--json", str(report), *FAST])
    assert code == 1
    captured = capsys.readouterr()
    outputs = {"stdout": captured.out, "stderr": captured.err, "junit": junit.read_text(), "json": report.read_text()}
    for name, text in outputs.items():
        assert KEY not in text, f"the key leaked into {name}"
    assert "$QUOTA_API_KEY" in captured.out  # curl reproductions read the key from the environment
    assert "[REDACTED]" in captured.out  # the echoed key in a message is masked
