"""The command line's errors, run in-process: one line on stderr and exit status 1, never a traceback; a bad
flag value is argparse's usage error (exit status 2) ending with a line that names the flag. The cases of
the operator review's script (tests/streams/test_cli.py has the missing file, no input and more settings)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from streams.cli import main

LLMBAR = Path(__file__).parents[1] / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it
CHATS = LLMBAR / "chat_turns.jsonl"
REPLAY = ["replay", "--chats", str(CHATS), "--quiet", "--out"]  # + the output directory
REPORT = ["report", "--since", "2026-11-02T00:00:00Z", "--until", "2026-11-04T00:00:00Z"]


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int | str | None, str]:
    try:
        code: int | str | None = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    return code, capsys.readouterr().err


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The one line ``argv`` ends with on stderr, checked to be the only one, with exit status 1."""
    code, err = _run(argv, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert (code, len(lines)) == (1, 1), err
    assert lines[0].startswith("convowatch: error: ")
    return lines[0]


def _a_file(tmp_path: Path) -> Path:
    path = tmp_path / "afile"
    path.write_text("not a directory\n")
    return path


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CONVOWATCH_PARTITIONS", "abc", "invalid setting partitions (CONVOWATCH_PARTITIONS): "),
        (
            "CONVOWATCH_AGREEMENT_WINDOWS",
            '{"x": [0, 0]}',
            "(CONVOWATCH_AGREEMENT_WINDOWS): window 'x' needs ",
        ),
        # a traceback (a year out of range), and a message about the sizes of a window without a name
        (
            "CONVOWATCH_AGREEMENT_WINDOWS",
            '{"x": [1e15, 1]}',
            "(CONVOWATCH_AGREEMENT_WINDOWS): window 'x' is ",
        ),
        (
            "CONVOWATCH_AGREEMENT_WINDOWS",
            '{"": [3600, 300]}',
            "(CONVOWATCH_AGREEMENT_WINDOWS): a window needs a ",
        ),
        # every record an internal_error dead letter (an OverflowError), with exit status 0
        (
            "CONVOWATCH_JOIN_TTL_SECONDS",
            "1e-300",
            "(CONVOWATCH_JOIN_TTL_SECONDS): Input should be greater than ",
        ),
        ("CONVOWATCH_CONVERSATION_IDLE_SECONDS", "1e-300", "(CONVOWATCH_CONVERSATION_IDLE_SECONDS): Input "),
        (
            "CONVOWATCH_ALERT_RESEND_SECONDS",
            "1e300",
            "(CONVOWATCH_ALERT_RESEND_SECONDS): must be at most ten ",
        ),
        # accepted, and refused by Kafka, the clients or the Alertmanager sink only later, on Kafka
        (
            "CONVOWATCH_TOPIC_PREFIX",
            "shop bot.",
            "(CONVOWATCH_TOPIC_PREFIX): 'shop bot.': a topic name takes ",
        ),
        ("CONVOWATCH_APP_ID", "a" * 250, "(CONVOWATCH_APP_ID): makes topic names 271 characters long"),
        ("CONVOWATCH_BROKER", "kafka:notaport", "(CONVOWATCH_BROKER): 'kafka:notaport': the port must be "),
        (
            "CONVOWATCH_ALERTMANAGER_URL",
            "http://am:notaport",
            "(CONVOWATCH_ALERTMANAGER_URL): Alertmanager URL ",
        ),
        ("CONVOWATCH_TAXONOMY", "{tmp}/missing.yaml", "cannot read taxonomy file {tmp}/missing.yaml: "),
        ("CONVOWATCH_GOLDEN", "{tmp}/missing.jsonl", "cannot read golden set file {tmp}/missing.jsonl: "),
        ("CONVOWATCH_VENDOR_SLA", "{tmp}/missing.yaml", "cannot read vendor SLA file {tmp}/missing.yaml: "),
        # PyYAML's message ran to four lines, the last a caret under the quoted record
        ("CONVOWATCH_TAXONOMY", str(CHATS), f"{CHATS}: not valid YAML at line 2 column 1: "),
        ("CONVOWATCH_GOLDEN", str(LLMBAR / "LICENSE"), f"{LLMBAR / 'LICENSE'} line 1: not valid JSON"),
        ("CONVOWATCH_REVIEW_QUEUES", "[1]", "(CONVOWATCH_REVIEW_QUEUES): Input should be a valid dictionary"),
        ("CONVOWATCH_ROLE", "bogus", "(CONVOWATCH_ROLE): Input should be 'all', 'join' or 'aggregate'"),
    ],
)
def test_replay_with_a_bad_setting(variable, value, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(variable, value.replace("{tmp}", str(tmp_path)))
    line = _error([*REPLAY, str(tmp_path / "out")], capsys)
    assert expected.replace("{tmp}", str(tmp_path)) in line


def test_an_alertmanager_url_refused_at_start_is_not_shown(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONVOWATCH_ALERTMANAGER_URL", "http://amuser:AmPass-s3cret@am:notaport")
    line = _error([*REPLAY, str(tmp_path / "out")], capsys)
    assert "(CONVOWATCH_ALERTMANAGER_URL)" in line and "s3cret" not in line and "amuser" not in line


def test_topics_create_refuses_a_category_making_a_topic_name_too_long_before_asking_the_broker(
    tmp_path, capsys, monkeypatch
):
    taxonomy = tmp_path / "taxonomy.yaml"
    taxonomy.write_text(f"dimensions:\n  safety:\n    category: {'u' * 240}\n    severity: high\n")
    monkeypatch.setenv("CONVOWATCH_TAXONOMY", str(taxonomy))
    line = _error(["topics", "create", "--broker", "127.0.0.1:1"], capsys)
    assert f"topic name convowatch.defects.{'u' * 41}... is 259 characters long, Kafka takes 249" in line


def test_replay_of_a_directory_names_it(tmp_path, capsys):
    line = _error(["replay", "--chats", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"], capsys)
    assert f"chat_turns file not found: {tmp_path}" in line


@pytest.mark.parametrize("command", [REPLAY, ["schemas", "--out"], ["demo", "--metrics-port", "0", "--out"]])
def test_an_output_directory_that_is_a_file(command, tmp_path, capsys):
    # FileExistsError tracebacks before; the demo's /metrics server is shut down on the way out
    path = _a_file(tmp_path)
    assert f"cannot write into {path}: it is a file, not a directory" in _error([*command, str(path)], capsys)
    line = _error([*command, str(path / "out")], capsys)
    assert f"cannot create directory {path / 'out'}: Not a directory" in line


@pytest.mark.parametrize("command", ["demo", "worker"])
@pytest.mark.parametrize("port", ["99999", "-1"])
def test_a_metrics_port_out_of_range(command, port, capsys):
    # the demo's was never checked: 99999 ended in an OverflowError traceback and -1 ran on a free port
    line = _error([command, "--metrics-port", port], capsys)
    assert "invalid --metrics-port: Input should be " in line


def test_a_metrics_host_that_does_not_resolve(tmp_path, capsys, monkeypatch):
    # a socket.gaierror traceback of 41 lines before; the worker's message now
    monkeypatch.setenv("CONVOWATCH_METRICS_HOST", "256.1.1.1")
    line = _error(["demo", "--duration", "1", "--out", str(tmp_path)], capsys)
    assert "cannot serve metrics on 256.1.1.1:" in line and "(CONVOWATCH_METRICS_HOST, " in line


def test_a_taken_metrics_port_is_an_error_for_the_worker(capsys):
    # the demo falls back to a free port instead (tests/streams/test_demo.py)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _error(["worker", "--broker", "127.0.0.1:1", "--metrics-port", str(port)], capsys)
    assert f"cannot serve metrics on 127.0.0.1:{port} " in line and "in use" in line


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["demo", "--duration", "0"], "--duration"),  # ValueError tracebacks before
        (["demo", "--duration", "inf"], "--duration"),
        (["demo", "--rate", "nan"], "--rate"),
        (["demo", "--rate", "-3"], "--rate"),
        (["demo", "--rate", "fast"], "--rate"),
        (["produce", "--generate", "--rate", "nan"], "--rate"),
        (["produce", "--generate", "--duration", "nan"], "--duration"),
        ([*REPORT[:2], "2026-11-02T00:00:00", *REPORT[3:], "--input", ".", "--out", "a.html"], "--since"),
    ],
)
def test_a_bad_flag_value_is_a_usage_error_naming_the_flag(argv, flag, capsys):
    code, err = _run(argv, capsys)
    assert code == 2 and "Traceback" not in err, err
    assert f"error: argument {flag}: " in err.splitlines()[-1]


def test_report_errors(tmp_path, capsys):
    missing = tmp_path / "missing"
    line = _error([*REPORT, "--input", str(missing), "--out", str(tmp_path / "a.html")], capsys)
    assert f"--input {missing} is not a directory" in line
    since_after_until = ["report", "--since", REPORT[4], "--until", REPORT[2]]
    line = _error([*since_after_until, "--input", str(LLMBAR), "--out", str(tmp_path / "a.html")], capsys)
    assert "must be before --until" in line
    path = _a_file(tmp_path)
    line = _error([*REPORT, "--input", str(LLMBAR), "--out", str(path / "a.html")], capsys)
    assert f"cannot write into {path}: it is a file, not a directory" in line
    line = _error([*REPORT, "--input", str(LLMBAR), "--out", str(tmp_path)], capsys)  # a directory
    assert f"cannot write {tmp_path}: Is a directory" in line


def test_report_into_a_directory_that_is_missing_creates_it(tmp_path, capsys):
    out = tmp_path / "new" / "a.html"
    code, err = _run([*REPORT, "--input", str(LLMBAR), "--out", str(out)], capsys)
    assert code == 0, err
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in out.parent.iterdir()] == ["a.html"]  # no partial file left


def test_produce_of_a_missing_file(tmp_path, capsys):
    line = _error(["produce", "--broker", "127.0.0.1:1", "--chats", str(tmp_path / "missing.jsonl")], capsys)
    assert f"chat_turns file not found: {tmp_path / 'missing.jsonl'}" in line


def test_topics_with_no_partitions(capsys):
    line = _error(["topics", "create", "--broker", "127.0.0.1:1", "--partitions", "0"], capsys)
    assert "invalid --partitions: Input should be greater than or equal to 1" in line
