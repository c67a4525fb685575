"""bench/gpu/preflight.py: a missing or mismatched component is named (MISSING / FAILED) and the job goes on."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest

from conftest import load_script


def test_unmet_requirement_is_named_with_the_installed_version(monkeypatch):
    pre = load_script("bench/gpu/preflight.py")
    real = md.version
    monkeypatch.setattr(md, "version", lambda n: "4.0.0" if n.replace("_", "-") == "typing-extensions" else real(n))
    lines = []
    monkeypatch.setattr(pre, "checks", lambda xp: [("requires pydantic", lambda: pre._requires("pydantic"))])
    status = pre.run(np, stream=_Lines(lines))
    assert status == {"requires pydantic": "FAILED"}
    assert "typing-extensions>=" in lines[0] and "(have 4.0.0)" in lines[0]


def test_every_outcome_is_one_line_and_nothing_raises(monkeypatch):
    pre = load_script("bench/gpu/preflight.py")

    def broken():
        raise ValueError("launch failed\nsecond line")

    def absent():
        raise pre.Missing("no nvidia-smi")

    monkeypatch.setattr(pre, "checks", lambda xp: [("a", lambda: "fine"), ("b", absent), ("c", broken)])
    lines = []
    assert pre.run(np, stream=_Lines(lines)) == {"a": "ok", "b": "MISSING", "c": "FAILED"}
    assert [l.split(" [")[0] for l in lines] == ["preflight a: ok fine", "preflight b: MISSING no nvidia-smi",
                                                 "preflight c: FAILED ValueError: launch failed"]
    with pytest.raises(pre.Missing, match="not installed"):
        pre._version(("no-such-dist-here",))


class _Lines:
    """A stream collecting what print() writes, one entry per line."""

    def __init__(self, out: list):
        self.out = out

    def write(self, text: str) -> None:
        self.out.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        pass
