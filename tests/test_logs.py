"""Logs: text and JSON formats, request ids, the access log, and no prompts or completions unless asked."""

from __future__ import annotations

import io
import json
import logging
import os
import time
import uuid
from pathlib import Path

import pytest
from test_e2e_security import CHAT, call, chat

from dynamo.nemo_switchyard import logs


def _record(message: str = "hello %s", args: tuple = ("world",), **extra) -> logging.LogRecord:
    record = logging.LogRecord("switchyard.test", logging.WARNING, __file__, 1, message, args, None)
    record.__dict__.update(extra)
    return record


# ------------------------------------------------------------------ formatters


def test_json_lines_have_time_level_logger_message_request_id_and_extras():
    token = logs.REQUEST_ID.set("rid-1")
    try:
        line = logs.JsonFormatter().format(_record(decision="weak", score=0.25))
    finally:
        logs.REQUEST_ID.reset(token)
    entry = json.loads(line)
    assert entry["level"] == "warning" and entry["logger"] == "switchyard.test" and entry["message"] == "hello world"
    assert entry["request_id"] == "rid-1" and entry["decision"] == "weak" and entry["score"] == 0.25
    assert entry["time"].endswith("Z") and "T" in entry["time"]
    assert "\n" not in line


def test_json_without_a_request_and_with_an_exception():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("switchyard", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    entry = json.loads(logs.JsonFormatter().format(record))
    assert "request_id" not in entry
    assert "ValueError: boom" in entry["exception"]


def test_text_lines_carry_extras_and_the_request_id_and_cannot_be_forged():
    formatter = logs.TextFormatter()
    line = formatter.format(_record(request_id="abc", model="m 1", prompt='evil\n2026 INFO forged "line"', score=None))
    assert line.count("\n") == 0
    assert line.endswith("request_id=abc")
    assert 'model="m 1"' in line and "prompt=" in line and "score" not in line
    assert formatter.format(_record()).endswith("switchyard.test: hello world")  # nothing to add: the classic line


def test_access_lines_do_not_repeat_method_path_and_status_in_text():
    record = logging.LogRecord("switchyard.access", logging.INFO, __file__, 1, "%s %s %s", ("GET", "/x", 200), None)
    record.__dict__.update(method="GET", path="/x", status=200, decision=None, duration_ms=1.5)
    line = logs.TextFormatter().format(record)
    assert line.endswith("switchyard.access: GET /x 200 duration_ms=1.5")


def test_configure_is_a_no_op_when_logging_is_already_set_up(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    stream = io.StringIO()
    monkeypatch.setattr(logs.sys, "stderr", stream)
    logs.configure("info", "json")
    assert len(root.handlers) == 1 and isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    assert root.level == logging.INFO
    logs.configure("debug", "text")
    assert len(root.handlers) == 1 and root.level == logging.INFO


@pytest.mark.parametrize("value, ok", [(b"abc", True), (b"x" * 128, True), (b"x" * 129, False), (b"", False), (b"a b", False),
                                       (b"a\tb", False), (b"caf\xc3\xa9", False), (b"a\x7f", False), (b"01J9-Z:/._~", True)])
def test_valid_request_id(value, ok):
    assert logs.valid_request_id(value) is ok


def test_new_request_ids_are_16_hex_and_differ():
    ids = {logs.new_request_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 16 and int(i, 16) >= 0 for i in ids)


def test_forked_workers_make_different_request_ids():
    # --workers N forks after start-up: each worker must not replay its parent's (or a sibling's) ids.
    read, write = os.pipe()
    children = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:
            os.write(write, logs.new_request_id().encode() + b"\n")
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    os.close(write)
    with os.fdopen(read) as pipe:
        from_children = pipe.read().split()
    assert len(from_children) == 2 and len({*from_children, logs.new_request_id()}) == 3


# ------------------------------------------------------------------ through the server


def wait_for_line(path: Path, needle: str, timeout: float = 10.0) -> str:
    """The first log line containing ``needle`` (access lines are written just after the response)."""
    deadline = time.monotonic() + timeout
    while True:
        for line in path.read_text().splitlines():
            if needle in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line with {needle!r}:\n{path.read_text()}")
        time.sleep(0.02)


def test_json_logs_and_the_access_line(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--log-format", "json", backend=fake_backend)
    status, headers, _ = chat(server.url)
    assert status == 200
    rid = headers["x-request-id"][0]
    line = wait_for_line(server.log, rid)
    entry = json.loads(line)
    assert entry["logger"] == "switchyard.access" and entry["level"] == "info"
    assert entry["request_id"] == rid
    assert entry["method"] == "POST" and entry["path"] == "/v1/chat/completions" and entry["status"] == 200
    assert entry["decision"] == headers["x-switchyard-decision"][0]
    assert entry["model"] == headers["x-routellm-routed-model"][0]
    assert entry["score"] == pytest.approx(float(headers["x-switchyard-score"][0]), abs=1e-6)
    assert isinstance(entry["duration_ms"], float) and entry["duration_ms"] >= 0
    assert "prompt" not in entry
    # a refused request and a forwarded one are logged too
    rid = call(server.url, "GET", "/v1/%2e%2e/x")[1]["x-request-id"][0]
    assert json.loads(wait_for_line(server.log, rid))["status"] == 400
    rid = call(server.url, "GET", "/tokenize?secret=1")[1]["x-request-id"][0]
    entry = json.loads(wait_for_line(server.log, rid))
    assert entry["path"] == "/tokenize" and entry["decision"] is None  # the query string is not logged
    for line in server.log.read_text().splitlines():  # every line of the process is JSON, start-up included
        json.loads(line)


def test_text_access_line(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", backend=fake_backend)
    status, headers, _ = chat(server.url, {"x-request-id": "text-line-1"})
    assert status == 200
    line = wait_for_line(server.log, "request_id=text-line-1")
    assert " INFO switchyard.access: POST /v1/chat/completions 200 " in line
    assert f"decision={headers['x-switchyard-decision'][0]}" in line and f"model={headers['x-routellm-routed-model'][0]}" in line
    assert "score=" in line and "duration_ms=" in line


def test_the_access_log_follows_the_log_level(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--log-level", "warning", backend=fake_backend)
    chat(server.url, {"x-request-id": "quiet-1"})
    call(server.url, "GET", "/v1/models", headers={"x-request-id": "quiet-2"})  # a later request: the first one's line would be out
    assert http_ok(server.url)
    assert "quiet-1" not in server.log.read_text()


def http_ok(url: str) -> bool:
    return call(url, "GET", "/health")[0] == 200


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_prompts_and_completions_are_not_logged_by_default(start_switchyard, fake_backend, log_format):
    server = start_switchyard("--router-type", "random", "--log-format", log_format, "--log-level", "debug", backend=fake_backend)
    marker = f"MARKER-{uuid.uuid4().hex}"
    body = {"model": "auto", "messages": [{"role": "system", "content": f"sys {marker}"}, {"role": "user", "content": f"tell me {marker}"}]}
    rids = [
        chat(server.url, {"x-request-id": "p-1"}, body)[1],
        chat(server.url, {"x-request-id": "p-2"}, {**body, "stream": True})[1],
        call(server.url, "POST", "/v1/completions", json.dumps({"model": "auto", "prompt": marker}).encode(), {"x-request-id": "p-3"})[1],
        call(server.url, "POST", "/v1/chat/completions", f'{{"model": "auto", "messages": "{marker}"'.encode(), {"x-request-id": "p-4"})[1],
    ]
    assert all(r["x-request-id"] for r in rids)
    for rid in ("p-1", "p-2", "p-3", "p-4"):
        wait_for_line(server.log, rid)
    text = server.log.read_text()
    assert marker not in text
    assert "fake answer" not in text and "t\u00f6k" not in text  # completions (the fake backend's answers) neither


def test_log_prompts_adds_the_prompt_to_the_access_line(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--log-format", "json", "--log-prompts", backend=fake_backend)
    marker = f"MARKER-{uuid.uuid4().hex}"
    chat(server.url, {"x-request-id": "lp-1"}, {"model": "auto", "messages": [{"role": "user", "content": f"what is {marker}?"}]})
    entry = json.loads(wait_for_line(server.log, "lp-1"))
    assert entry["prompt"] == f"what is {marker}?"
    # the completion still is not logged
    assert "fake answer" not in server.log.read_text()
    long = "y" * (logs.PROMPT_LOG_LIMIT + 100)
    chat(server.url, {"x-request-id": "lp-2"}, {"model": "auto", "messages": [{"role": "user", "content": long}]})
    assert json.loads(wait_for_line(server.log, "lp-2"))["prompt"] == "y" * logs.PROMPT_LOG_LIMIT + "..."


def test_log_prompts_in_text_format(start_switchyard, fake_backend):
    server = start_switchyard("--router-type", "random", "--log-prompts", backend=fake_backend)
    marker = f"MARKER-{uuid.uuid4().hex}"
    chat(server.url, {"x-request-id": "lpt-1"}, {**CHAT, "messages": [{"role": "user", "content": f"two words\n{marker}"}]})
    line = wait_for_line(server.log, "request_id=lpt-1")
    assert f'prompt="two words\\n{marker}"' in line


def test_fields_given_as_one_attribute_are_written_like_extras():
    record = logging.LogRecord("switchyard.access", logging.INFO, __file__, 1, "%s %s %s", ("GET", "/x", 404), None)
    record.fields = {"method": "GET", "path": "/x", "status": 404, "decision": None, "model": "a b"}
    record.other = 7
    assert logs.TextFormatter().format(record).endswith('switchyard.access: GET /x 404 model="a b" other=7')
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["status"] == 404 and entry["decision"] is None and entry["model"] == "a b" and entry["other"] == 7 and "fields" not in entry
