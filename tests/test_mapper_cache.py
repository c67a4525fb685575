"""The mapper's result cache: a repeated problem is searched once, and the cache stays bounded."""

from __future__ import annotations

from accelsim.model import mapper
from accelsim.model.arch import load_arch


def test_cache_searches_once_and_drops_the_least_recently_used(monkeypatch):
    arch = load_arch("systolic_ws_32x32")
    calls = []
    real = mapper._search_systolic
    monkeypatch.setattr(mapper, "_search_systolic", lambda *a: calls.append(a[2:5]) or real(*a))
    monkeypatch.setattr(mapper, "_CACHE", {})
    monkeypatch.setattr(mapper, "CACHE_SIZE", 2)
    first = mapper.search_gemm(arch, "a", 64, 48, 40, "int8")
    again = mapper.search_gemm(arch, "b", 64, 48, 40, "int8")
    assert calls == [(64, 48, 40)] and again.layer == "b" and first.layer == "a"
    assert again.groups == first.groups and again is not first
    mapper.search_gemm(arch, "c", 32, 48, 40, "int8")
    mapper.search_gemm(arch, "a", 64, 48, 40, "int8")      # used again: now the most recent
    mapper.search_gemm(arch, "d", 16, 48, 40, "int8")      # drops (32, 48, 40), the least recent
    assert len(mapper._CACHE) == 2
    mapper.search_gemm(arch, "a", 64, 48, 40, "int8")
    mapper.search_gemm(arch, "c", 32, 48, 40, "int8")
    assert calls == [(64, 48, 40), (32, 48, 40), (16, 48, 40), (32, 48, 40)]
