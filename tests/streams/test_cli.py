"""The ``convowatch`` command line, run in-process."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from streams.cli import main

LLMBAR = Path(__file__).parents[1] / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it
CHATS = LLMBAR / "chat_turns.jsonl"
VERDICTS = LLMBAR / "judge_verdicts.jsonl"
LABELS = LLMBAR / "human_labels.jsonl"


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("convowatch: error: ")
    return lines[0]


def test_replay_writes_outputs_and_report(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "replay",
            "--chats",
            str(CHATS),
            "--verdicts",
            str(VERDICTS),
            "--labels",
            str(LABELS),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    for name in (
        "defects.jsonl",
        "escalations.jsonl",
        "deadletter.jsonl",
        "review_requests.jsonl",
        "report.json",
    ):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["events"] == {
        "chat_turns": 200,
        "judge_verdicts": 400,
        "human_labels": 200,
        "signals": 0,
        "deadletter": 0,
    }
    summary = json.loads(captured.out)
    assert summary["events"] == report["events"]
    rows = {r["judge_id"]: r for r in summary["agreement"]}
    assert rows["gpt-4"]["n"] == 200
    assert rows["gpt-4"]["cohen_kappa"] == pytest.approx(0.589918, abs=1e-6)
    assert rows["chatgpt"]["percent_agreement"] == pytest.approx(0.700, abs=1e-9)
    assert "report.json" in captured.err
    assert "processed" not in captured.err  # --quiet


def test_replay_of_one_stream_with_bad_lines_dead_letters_them(tmp_path, capsys):
    chats = tmp_path / "chats.jsonl"
    good = CHATS.read_bytes().splitlines()[0]
    chats.write_bytes(good + b"\n\n[1, 2]\n{broken\n")
    out = tmp_path / "out"
    assert main(["replay", "--chats", str(chats), "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    dead = [json.loads(line) for line in (out / "deadletter.jsonl").read_text().splitlines()]
    assert sorted(d["reason"] for d in dead) == ["invalid_json", "not_an_object"]
    assert sorted(d["offset"] for d in dead) == [3, 4]  # line numbers in the file
    assert json.loads((out / "report.json").read_text())["events"]["deadletter"] == 2


@pytest.mark.parametrize("flag", ["--chats", "--verdicts", "--labels"])
def test_replay_with_a_missing_file_exits_1_naming_the_file(tmp_path, capsys, flag):
    missing = tmp_path / "nope" / "missing.jsonl"
    others = {"--chats": CHATS, "--verdicts": VERDICTS, "--labels": LABELS}
    argv = ["replay", "--out", str(tmp_path / "out"), "--quiet"]
    for name, path in others.items():
        argv += [name, str(missing if name == flag else path)]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    line = _one_line_error(err)
    assert str(missing) in line


def test_replay_with_no_inputs_exits_1(tmp_path, capsys):
    code = main(["replay", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    line = _one_line_error(err)
    assert "--chats" in line


def test_schemas_writes_nine_schema_files(tmp_path, capsys):
    out = tmp_path / "schemas"
    assert main(["schemas", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.split()
    files = sorted(out.glob("*.schema.json"))
    assert len(files) == 9  # four inputs, five outputs (divergence included)
    assert sorted(printed) == sorted(str(f) for f in files)
    for f in files:
        assert json.loads(f.read_text())["$id"].endswith(f.name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_topics_create_against_an_unreachable_broker_exits_1_naming_the_address(capsys):
    address = f"127.0.0.1:{_free_port()}"
    started = time.monotonic()
    code = main(["topics", "create", "--broker", address])
    elapsed = time.monotonic() - started
    err = capsys.readouterr().err
    assert code == 1
    line = _one_line_error(err)
    assert address in line
    assert elapsed < 30


@pytest.mark.parametrize("argv", [["frobnicate"], [], ["topics"], ["topics", "delete"], ["replay"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("key", [None, "short-secret"])
def test_hash_redaction_without_a_long_enough_key_exits_1_without_echoing_it(key, capsys, monkeypatch):
    monkeypatch.setenv("CONVOWATCH_TEXT_REDACTION", "hash")
    if key is not None:
        monkeypatch.setenv("CONVOWATCH_TEXT_HASH_KEY", key)
    assert main(["demo", "--duration", "0.1"]) == 1
    err = _one_line_error(capsys.readouterr().err)
    assert "CONVOWATCH_TEXT_HASH_KEY" in err and "16 characters" in err
    assert "short-secret" not in err


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CONVOWATCH_AGREEMENT_WINDOWS", "notjson"),  # JSON-valued: pydantic-settings' own error
        ("CONVOWATCH_REVIEW_QUEUES", "{shopper: q}"),
        ("CONVOWATCH_JOIN_TTL_SECONDS", "inf"),  # would break the expiry index at the first eviction
        ("CONVOWATCH_SESSION_TIMEOUT_SECONDS", "120"),  # above Faust's request timeout: refused at start
        ("CONVOWATCH_HEARTBEAT_INTERVAL_SECONDS", "30"),  # half the session timeout
        ("CONVOWATCH_DRIFT_PAIRS_PER_DAY", "0.5"),  # a run length of 1: every pair failed in the view
        ("CONVOWATCH_SPIKE_TURNS_PER_DAY", "1e11"),  # a run length past 1e12: every spike update failed
        # past 64 bits: the changelog's JSON refuses them, and the aggregate stage failed at every restart
        ("CONVOWATCH_REVIEW_SEED", str(2**64)),
        ("CONVOWATCH_VERSION_MIN_SAMPLES", str(2**63)),
        ("CONVOWATCH_AGREEMENT_WINDOWS", '{"1h": [3600, 18446744073709551616]}'),
    ],
)
def test_a_bad_setting_is_a_one_line_error_naming_its_variable(variable, value, capsys, monkeypatch):
    monkeypatch.setenv(variable, value)
    assert main(["demo", "--duration", "0.1"]) == 1
    assert f"({variable})" in _one_line_error(capsys.readouterr().err)


def test_an_unreadable_ca_bundle_is_a_one_line_error_with_ssl_only(capsys, monkeypatch):
    # librdkafka's own error named neither the file nor the variable; without SSL the file is never read,
    # and an empty variable (a template's ${VAR:-}) means unset
    from streams.config import Settings

    monkeypatch.setenv("CONVOWATCH_SSL_CAFILE", "/run/secrets/no-such-ca.pem")
    assert Settings().ssl_cafile is not None  # PLAINTEXT: not read, so not checked
    monkeypatch.setenv("CONVOWATCH_SECURITY_PROTOCOL", "SSL")
    assert main(["demo", "--duration", "0.1"]) == 1
    assert "(CONVOWATCH_SSL_CAFILE)" in _one_line_error(capsys.readouterr().err)
    monkeypatch.setenv("CONVOWATCH_SSL_CAFILE", "")
    assert Settings().ssl_cafile is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [("CONVOWATCH_PERCEPTUAL_CHECK_EVERY", "500"), ("CONVOWATCH_PERCEPTUAL_HORIZON", "1")],
)
def test_perceptual_settings_that_do_not_fit_together_are_a_one_line_error(
    variable, value, capsys, monkeypatch
):
    # each valid alone, they failed in the perceptual view with a traceback
    monkeypatch.setenv(variable, value)
    assert main(["demo", "--duration", "0.1"]) == 1
    err = _one_line_error(capsys.readouterr().err)
    assert "CONVOWATCH_PERCEPTUAL_* settings do not fit together" in err and "check_every" in err


def test_a_misspelt_variable_is_named_in_a_warning_without_its_value(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVOWATCH_SASL_PASWORD", "hunter2")  # one S short: would be silently ignored
    assert main(["schemas", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "CONVOWATCH_SASL_PASWORD" in err and "hunter2" not in err
