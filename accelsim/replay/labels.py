"""Row labels: the one string that names a measured configuration in every trace table.

`traces summarize`, `traces roofline`, `traces compare` and `validate` print the same label, so
a row can be followed from one table to the next. A label names what was computed (kernel,
dtype, shape, N:M pattern or TASD series, layout, Kron factors, batch) and how (``impl``);
``compare`` matches two folders on what was computed only, since two devices run different
implementations of the same product.
"""

from __future__ import annotations

import json

__all__ = ["WORKLOAD_FIELDS", "config_fields", "params_of", "row_label", "workload_key"]

WORKLOAD_FIELDS = ("kernel", "dtype", "shape", "batch", "pattern", "series", "layout", "factors")
"""Fields naming what a row computed; ``impl`` (how) follows them in a label."""


def _json(value) -> dict:
    """A ``shapes``/``params`` cell as a dict: the recorder stores JSON text; anything unreadable is empty."""
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(value or "{}")
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def params_of(row: dict) -> dict:
    """The row's ``params`` as a dict."""
    return _json(row.get("params"))


def _dims(dims) -> str:
    return "×".join(str(d) for d in dims)


def _shape(row: dict) -> str:
    """``m×n×k=…`` for products; the operand shapes (``y=1000×2000``) for kernels without m, n, k (projections)."""
    if row.get("m") is not None:
        return f"m×n×k={_dims((row['m'], row['n'], row['k']))}"
    shapes = _json(row.get("shapes"))
    return " ".join(f"{name}={_dims(dims)}" for name, dims in sorted(shapes.items()) if isinstance(dims, list))


def _factors(factors: list) -> str:
    """``8×8⊗16×16``; N equal factors as the Kronecker power ``(8×8)^⊗N``."""
    dims = [_dims(f) for f in factors]
    return f"({dims[0]})^⊗{len(dims)}" if len(dims) > 1 and len(set(dims)) == 1 else "⊗".join(dims)


def config_fields(row: dict) -> dict[str, str]:
    """Name -> text of every field identifying ``row``'s configuration, in label order; absent ones left out.

    ``impl`` is ``params["impl"]``, or ``params["backend_impl"]`` in traces recorded before that key.
    """
    params = params_of(row)
    fields = {"kernel": row["kernel"], "dtype": row["dtype"], "shape": _shape(row)}
    if params.get("batch") not in (None, 1):
        fields["batch"] = str(params["batch"])
    if row.get("pattern"):
        fields["pattern"] = row["pattern"]
    if row.get("tasd_series"):
        fields["series"] = row["tasd_series"]
    if params.get("layout"):
        fields["layout"] = str(params["layout"])
    if params.get("factors"):
        fields["factors"] = _factors(params["factors"])
    if params.get("cold_bytes"):
        fields["cold"] = f"{params['cold_bytes'] / 2**20:.3g}MiB"  # timed after streaming this much
    impl = params.get("impl") or params.get("backend_impl")
    if impl:
        fields["impl"] = str(impl)
    return {k: v for k, v in fields.items() if v}


def _join(fields: dict[str, str]) -> str:
    head = [fields[k] for k in ("kernel", "dtype", "shape") if k in fields]
    return " ".join(head + [f"{k}={v}" for k, v in fields.items() if k not in ("kernel", "dtype", "shape")])


def row_label(row: dict) -> str:
    """``kernel dtype shape [batch=…] [pattern=…|series=…] [layout=…] [factors=…] [impl=…]``.

    >>> row_label({"kernel": "nm_spmm", "dtype": "float16", "m": 8, "n": 16, "k": 32, "pattern": "2:4",
    ...            "params": '{"layout": "vector", "impl": "nm_vector_cuda"}'})
    'nm_spmm float16 m×n×k=8×16×32 pattern=2:4 layout=vector impl=nm_vector_cuda'
    """
    return _join(config_fields(row))


def workload_key(row: dict) -> str:
    """The label without ``impl``: what was computed, the key two trace folders are matched on."""
    return _join({k: v for k, v in config_fields(row).items() if k != "impl"})
