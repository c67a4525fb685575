"""Design-space sweeps: a grid of config overrides × workloads, run in-process or on Dask, resumable.

Grid syntax (``--grid``; keys are the dotted paths of ``--set``)::

    compute.rows=16,32,64                      # values split on commas
    compute.sparsity.patterns=[],[2:4],[1:4,2:4]   # commas inside [...] / {...} / quotes do not split
    compute.sparsity.patterns=[2:4];[1:4,2:4]  # or: any ';' in the text makes ';' the separator

Each value is parsed as YAML (as ``--set``), except that ``2:4`` stays the string ``"2:4"``
(YAML 1.1 would read it as the base-60 integer 124). Every point is validated before any work
starts. A point's key is the sha256 of its resolved config (canonical JSON), the workload's
layers and the accelsim version, so a re-run with ``out`` skips points already stored.
The same point gives bit-identical numbers on every execution path: all paths call
:func:`evaluate` on the same config dict and workload.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


from accelsim import __version__
from accelsim.checks import MAX_GRID_POINTS
from accelsim.model.arch import ArchConfig, apply_overrides, load_arch, parse_value, validate_arch
from accelsim.errors import ConfigError
from accelsim.model.mapper import FIXED, Mapper
from accelsim.model.simulate import simulate
from accelsim.explore.store import ResultStore, read_results
from accelsim.model.workload import Network
from accelsim.model.workloads import as_network

__all__ = ["METRICS", "Point", "SweepResult", "evaluate", "expand_grid", "parse_grid", "run_sweep"]

#: Result columns computed per (point, workload), besides the key, names and swept parameters.
METRICS = ("cycles", "energy_pj", "edp", "seconds", "area_mm2", "utilization")


def _split_values(text: str) -> list[str]:
    """Split on ';' if present, else on commas outside brackets and quotes."""
    if ";" in text:
        return [t.strip() for t in text.split(";")]
    out, depth, quote, cur = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_grid(items: list[str] | None) -> dict[str, list[tuple[str, object]]]:
    """``["compute.rows=16,32"]`` → ``{"compute.rows": [("16", 16), ("32", 32)]}`` (text, value) in order."""
    grid: dict[str, list[tuple[str, object]]] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r}: expected key.path=v1,v2,..., e.g. compute.rows=16,32")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        tokens = _split_values(raw)
        grid[key] = [(t, parse_value(t, f"--grid {key}={raw}")) for t in tokens]
    return grid


@dataclass(frozen=True)
class Point:
    """One validated configuration: the swept values and the resolved config as a JSON-able dict."""

    params: dict
    config: dict = field(repr=False)
    config_key: str


def _canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expand_grid(arch, grid: dict[str, list[tuple[str, object]]]) -> list[Point]:
    """Validate every value alone, then every combination; return the distinct points in grid order.

    Raises :class:`ConfigError` naming the key and value (or the combination) on the first bad point,
    before anything has run.
    """
    keys = list(grid)
    size = math.prod(len(grid[k]) for k in keys)
    if size > MAX_GRID_POINTS:
        raise ConfigError(f"--grid: {size:,} points ({' x '.join(str(len(grid[k])) for k in keys)}), more than "
                          f"{MAX_GRID_POINTS:,} (accelsim.checks.MAX_GRID_POINTS); split the sweep")
    base = load_arch(arch) if not isinstance(arch, ArchConfig) else arch
    doc = base.model_dump(mode="json")
    for key, values in grid.items():
        for text, value in values:
            origin = f"--grid {key}={text}"
            validate_arch(apply_overrides(doc, {key: value}, origin), origin)
    points, seen = [], set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        origin = "--grid point " + ", ".join(f"{k}={t}" for k, (t, _) in zip(keys, combo))
        cfg = validate_arch(apply_overrides(doc, {k: v for k, (_, v) in zip(keys, combo)}, origin), origin)
        config = cfg.model_dump(mode="json")
        ckey = _sha(_canonical(config))
        if ckey not in seen:
            seen.add(ckey)
            points.append(Point({k: v for k, (_, v) in zip(keys, combo)}, config, ckey))
    return points


def _fingerprint(net: Network) -> str:
    """The workload's identity: its name, layers (dataclass reprs) and edges."""
    edges = sorted(net.graph.edges)
    return _sha(_canonical({"name": net.name, "layers": [repr(l) for l in net.layers], "edges": edges,
                            "accelsim": __version__}))


def _check_same_workloads(out, nets: list[Network], mapper: Mapper = FIXED) -> None:
    """Refuse to resume into ``out`` when it holds rows of a workload of the same name but another
    definition (its file changed since): old and new rows would mix under one name."""
    tag = _mapper_tag(mapper)
    fps = {n.name + tag: _fingerprint(n) + tag for n in nets}
    stored = read_results(out).select(["key", "config_key", "workload"]).to_pylist()
    for row in stored:
        fp = fps.get(row["workload"])
        if fp is not None and row["key"] != _sha(f"{row['config_key']}{fp}"):
            raise ConfigError(f"--out {out}: holds results of workload {row['workload']!r} computed from another "
                              "definition of it (its file changed since); sweep into a new --out, or move the old "
                              "part files away")


def evaluate(config: dict, net: Network, mapper: Mapper = FIXED) -> dict:
    """Simulate one resolved config on one workload; the metric columns of a result row."""
    cfg = ArchConfig.model_validate(config)
    rep = simulate(cfg, net, mapper=mapper)
    t = rep.total
    return {"cycles": t["cycles"], "energy_pj": t["energy_pj"], "edp": t["edp"], "seconds": rep.seconds,
            "area_mm2": float(sum(cfg.area_mm2().values())), "utilization": t["utilization"]}


def _run_chunk(items: list[tuple], nets: list[Network], mapper: Mapper = FIXED) -> list[tuple[str, dict]]:
    """Worker task: evaluate ``(key, config, workload index)`` items; returns ``(key, metrics)``."""
    return [(key, evaluate(config, nets[w], mapper)) for key, config, w in items]


def _column(value):
    """Parquet-friendly parameter value: numbers, bools and strings as is, anything else canonical JSON."""
    if isinstance(value, (bool, int, float, str)):
        return value
    return _canonical(value)


@dataclass
class SweepResult:
    """Rows for this grid (grid order × workload order), how many ran, and where."""

    rows: list[dict]
    computed: int
    reused: int
    wall_s: float
    mode: str
    out: Path | None = None

    @property
    def points_per_s(self) -> float:
        return self.computed / self.wall_s if self.wall_s > 0 else math.nan


def _mapper_tag(mapper: Mapper) -> str:
    return "" if mapper == FIXED else f" [{mapper.kind}:{mapper.objective}]"


def _rows_template(points: list[Point], nets: list[Network], mapper: Mapper = FIXED) -> tuple[dict[str, dict], list[tuple]]:
    """Row skeletons keyed by point key, and the work items ``(key, config, workload index)``.

    A searched mapping is part of the point: its rows get their own keys and the workload column
    says ``[search:OBJECTIVE]``, so a store never mixes them with fixed-mapping rows."""
    tag = _mapper_tag(mapper)
    fps = [_fingerprint(n) + tag for n in nets]

    def kind(v):
        return "bool" if isinstance(v, bool) else "num" if isinstance(v, (int, float)) else "text"

    # a parameter column mixing kinds (e.g. 64 and "auto") is stored as text so parquet can type it
    as_text = {k for k in (points[0].params if points else {}) if len({kind(_column(p.params[k])) for p in points}) > 1}
    skel, items = {}, []
    for p in points:
        params = {k: str(_column(v)) if k in as_text else _column(v) for k, v in p.params.items()}
        for w, (net, fp) in enumerate(zip(nets, fps)):
            key = _sha(p.config_key + fp)
            if key not in skel:
                skel[key] = {"key": key, "config_key": p.config_key, "arch": p.config["name"], "workload": net.name + tag,
                             **params}
                items.append((key, p.config, w))
    return skel, items


def _run_local(items, nets, on_done, mapper: Mapper = FIXED) -> None:
    for key, config, w in items:
        on_done([(key, evaluate(config, nets[w], mapper))])


def _dask_client(scheduler: str | None, workers: int | None):
    """A client on ``scheduler``, or on a new LocalCluster of ``workers`` single-threaded processes."""
    from distributed import Client, LocalCluster  # optional dependency: the [dist] extra

    if scheduler:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"--scheduler {scheduler}: cannot connect: {exc}") from None
    cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _run_dask(items, nets, on_done, client, chunk_size: int | None, mapper: Mapper = FIXED) -> None:
    """Submit chunks of points, at most a few per worker in flight, so the scheduler never holds thousands."""
    from distributed import as_completed  # optional dependency: the [dist] extra

    nworkers = max(1, len(client.scheduler_info().get("workers", {})))
    chunk = chunk_size or max(1, min(16, math.ceil(len(items) / (nworkers * 8))))
    chunks = iter([items[i:i + chunk] for i in range(0, len(items), chunk)])
    net_futs = [client.scatter(n, broadcast=True) for n in nets]
    ac = as_completed()
    pending = []
    for c in itertools.islice(chunks, nworkers * 4):
        f = client.submit(_run_chunk, c, net_futs, mapper, pure=False)
        pending.append(f)
        ac.add(f)
    try:
        for fut in ac:
            on_done(fut.result())
            nxt = next(chunks, None)
            if nxt is not None:
                f = client.submit(_run_chunk, nxt, net_futs, mapper, pure=False)
                pending.append(f)
                ac.add(f)
    finally:
        client.cancel([f for f in pending if not f.done()])


def _dask_available() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def run_sweep(arch, grid, workloads, *, out: str | Path | None = None, scheduler: str | None = None,
              workers: int | None = None, dask: bool | None = None, chunk_size: int | None = None,
              progress=None, flush_rows: int = 64, params: dict | None = None,
              mapper: Mapper = FIXED) -> SweepResult:
    """Validate every point, then evaluate the ones not yet in ``out`` and return this grid's rows.

    ``grid`` is :func:`parse_grid`'s output (or ``["key=v1,v2", ...]``); ``workloads`` are specs for
    :func:`~accelsim.model.workloads.as_network` (``params`` go to each, as ``--param``). Execution: Dask on ``scheduler`` if given, else a
    LocalCluster of ``workers`` processes; ``dask=False`` or ``workers=0`` (or Dask not installed)
    runs in-process. ``progress(done, total)`` is called as points finish. Finished rows are
    flushed to ``out`` in small batches, also when interrupted. ``mapper`` maps every layer of
    every point (:mod:`accelsim.model.mapper`).
    """
    if isinstance(grid, (list, tuple)):
        grid = parse_grid(list(grid))
    if not workloads:
        raise ConfigError("--workload: give at least one workload")
    nets = [as_network(w, **(params or {})) for w in workloads]
    points = expand_grid(arch, grid)
    skel, items = _rows_template(points, nets, mapper)
    store = ResultStore(out, flush_rows=flush_rows) if out is not None else None
    done_keys = store.keys() if store is not None else set()
    if done_keys:
        _check_same_workloads(out, nets, mapper)
    todo = [it for it in items if it[0] not in done_keys]
    use_dask = dask is not False and workers != 0 and (scheduler is not None or _dask_available())
    if scheduler is not None and not _dask_available():
        raise ConfigError("--scheduler needs Dask: pip install 'accelsim[dist]'")
    mode = ("dask " + (scheduler or f"local x{workers or os.cpu_count()}")) if use_dask else "in-process"
    metrics: dict[str, dict] = {}
    t0 = time.perf_counter()

    def on_done(pairs):
        rows = []
        for key, m in pairs:
            metrics[key] = m
            rows.append({**skel[key], **m})
        if store is not None:
            store.add(rows)
        if progress is not None:
            progress(len(metrics), len(todo))

    if progress is not None:
        progress(0, len(todo))
    try:
        if todo and use_dask:
            client, cluster = _dask_client(scheduler, workers)
            try:
                _run_dask(todo, nets, on_done, client, chunk_size, mapper)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        elif todo:
            _run_local(todo, nets, on_done, mapper)
    finally:
        if store is not None:
            store.flush()
    wall = time.perf_counter() - t0
    if len(metrics) < len(items):
        stored = read_results(out)
        by_key = dict(zip(stored.column("key").to_pylist(), stored.select(list(METRICS)).to_pylist()))
        for key, *_ in items:
            metrics.setdefault(key, by_key[key])
    rows = [{**skel[key], **{m: metrics[key][m] for m in METRICS}} for key, *_ in items]
    return SweepResult(rows, len(todo), len(items) - len(todo), wall, mode, Path(out) if out is not None else None)
