"""The messages between the processes (kit/grading/protocol.py): signed event lines, one JSON line
per warm-parent message, and event names that the writer and the reader share."""
from __future__ import annotations

import ast
import json

import pytest

from kit import ROOT
from kit.grading import protocol
from kit.grading.protocol import EVENT, encode, sign, verify

KEY = bytes(range(32))
EVENT_NAMES = {name: value for name, value in vars(EVENT).items() if not name.startswith("_")}


def test_a_signed_line_verifies_to_its_event():
    event = {"event": EVENT.RESULT, "nodeid": "checks/test_x.py::test_y", "status": "passed",
             "message": "ünïcode\nand a newline", "seq": 7}
    line = sign(KEY, event)
    assert line.endswith("\n") and line.count("\n") == 1     # one line, whatever the message holds
    mac, _, body = line.rstrip("\n").partition(" ")
    assert len(mac) == 32 and all(c in "0123456789abcdef" for c in mac)
    assert json.loads(body) == event
    assert verify(KEY, line) == event
    assert verify(KEY, line.rstrip("\n")) == event


@pytest.mark.parametrize("tamper", [
    lambda line: line.replace('"failed"', '"passed"'),                 # the body changed
    lambda line: line.replace('"seq": 3', '"seq": 4'),
    lambda line: ("0" * 32) + line[32:],                               # the mac replaced
    lambda line: line[33:],                                            # no mac at all
    lambda line: "",
    lambda line: "garbage",
])
def test_a_tampered_line_verifies_to_none(tamper):
    line = sign(KEY, {"event": EVENT.RESULT, "status": "failed", "seq": 3})
    assert verify(KEY, tamper(line)) is None


def test_a_line_signed_with_another_key_verifies_to_none():
    line = sign(b"someone else's key", {"event": EVENT.RESULT, "status": "passed", "seq": 0})
    assert verify(KEY, line) is None


def test_a_signed_body_that_is_not_an_object_verifies_to_none():
    import hashlib
    import hmac
    for body in ('["a", "list"]', '"text"', "not json"):
        mac = hmac.new(KEY, body.encode(), hashlib.sha256).hexdigest()[:32]
        assert verify(KEY, f"{mac} {body}\n") is None


def test_encode_makes_one_json_line():
    message = {"op": protocol.OP_FORK, "id": 3, "request": {"text": "two\nlines"}, "env": {"A": "b"}}
    data = encode(message)
    assert isinstance(data, bytes) and data.endswith(b"\n") and data.count(b"\n") == 1
    assert json.loads(data) == message


def test_the_names_are_distinct_strings():
    assert EVENT_NAMES and all(isinstance(v, str) and v for v in EVENT_NAMES.values())
    assert len(set(EVENT_NAMES.values())) == len(EVENT_NAMES)
    keys = [protocol.OP_FORK, protocol.OP_KILL, protocol.READY, protocol.ERROR, protocol.EXITED]
    assert all(isinstance(k, str) and k for k in keys)
    assert len(set(keys[:2])) == 2 and len(set(keys[2:])) == 3


def _event_names_used(path) -> set[str]:
    """The `EVENT.<NAME>` attributes a source file uses."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "EVENT"}


def test_every_event_the_child_writes_is_one_the_grader_reads_and_back():
    written = _event_names_used(ROOT / "kit" / "child" / "recorder.py")
    read = _event_names_used(ROOT / "kit" / "grading" / "runner.py")
    assert written == read == set(EVENT_NAMES), (written, read, set(EVENT_NAMES))


def test_the_recorder_documents_every_event_it_writes():
    doc = ast.get_docstring(ast.parse((ROOT / "kit" / "child" / "recorder.py").read_text(encoding="utf-8")))
    missing = [value for value in EVENT_NAMES.values() if f'"{value}"' not in doc]
    assert not missing, missing
