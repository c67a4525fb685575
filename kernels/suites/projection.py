"""Projection suite: bilevel ℓ1,∞ and multilevel projections, O(size) bandwidth-bound kernels.

Radius C = 0.1·‖Y‖ of the projected norm (computed when preparing, not timed), so every
call does the full work: an input already inside the ball would return early on some paths.
The trace's ``shapes["y"]`` is the projected array; ``m``/``n``/``k`` stay null (not a GEMM)
and FLOPs are not recorded (a few compare/select operations per element, no multiply-adds).
``params["impl"]`` names the implementation that ran (``bilevel_l1inf_device``, ...); the
device path's tuned launch shape and its ``matrix_passes`` (2 reads + 1 write) join it.
"""

from __future__ import annotations

import functools
import math

from kernels.projection import device as projection_device
from kernels.backend import backend_name
from kernels.projection import bilevel_impl, mixed_norm, multilevel_impl, project_l1inf_bilevel, project_multilevel
from kernels.impls import passes
from kernels.suites import Case, Prepared, case_rng, register

__all__ = ["MULTILEVEL_NORMS", "PAPER_SHAPES", "SMALL_SHAPES", "cases", "projection_case"]

SMALL_SHAPES = {"bilevel": [(256, 512), (512, 1024), (1024, 2048)], "multilevel": [(16, 64, 64), (32, 128, 128)]}
"""CI sizes: 0.5-8 MiB float32 arrays, milliseconds each on a 2-core CPU."""
PAPER_SHAPES = {
    "bilevel": [(1000, 1000), (1000, 2000), (1000, 4000), (1000, 8000), (4096, 11008)],
    "multilevel": [(64, 256, 256), (256, 512, 512)],
}
"""bench/bench_projection.py's 1000×m matrices, a LLaMA MLP weight, and conv-like tensors."""
MULTILEVEL_NORMS = ("l1", "inf", "inf")
_FRACTION = 0.1


def projection_case(suite: str, variant: str, shape: tuple[int, ...], dtype: str, xp, seed: int,
                    impl: str = "auto") -> Case:
    """``project_l1inf_bilevel(Y, C, axis=0)`` (variant ``bilevel``) or ``project_multilevel(T, C)``, run with ``impl``."""
    kernel = "project_l1inf_bilevel" if variant == "bilevel" else "project_multilevel"
    key = (kernel, tuple(shape), dtype) if impl == "auto" else (kernel, tuple(shape), dtype, impl)

    def prepare() -> Prepared:
        rng = case_rng(seed, (kernel, tuple(shape), dtype))  # every impl sees the same data
        y = xp.asarray(rng.standard_normal(shape, dtype="float32").astype(dtype))
        if variant == "bilevel":
            radius = _FRACTION * mixed_norm(y, ("l1", "inf"), axes=(1, 0))
            fn, args, params = project_l1inf_bilevel, (y, radius, 0), {"axis": 0, "norms": ["l1", "inf"]}
            name, groups = bilevel_impl(y, "inf", 0, impl), y
        else:
            radius = _FRACTION * mixed_norm(y, MULTILEVEL_NORMS)
            fn, args, params = project_multilevel, (y, radius, MULTILEVEL_NORMS), {"norms": list(MULTILEVEL_NORMS)}
            name, groups = multilevel_impl(y, MULTILEVEL_NORMS, None, impl), y.reshape(shape[0], -1).T
        params["impl"] = name
        if name.endswith("_device"):
            params["matrix_passes"] = sum(passes(name, shape, dtype))
            if backend_name(xp) == "cupy":
                params.update(projection_device.tune(groups, radius, "inf"))
        size = math.prod(shape) * y.dtype.itemsize
        fields = dict(
            kernel=kernel, dtype=dtype, shapes={"y": shape}, pattern=None, density=None,
            bytes_min=2 * size, params={**params, "radius_fraction": _FRACTION},
        )
        return Prepared(functools.partial(fn, impl=impl), args, fields)

    return Case(suite, key, f"{kernel} {dtype} {'x'.join(map(str, shape))}" + ("" if impl == "auto" else f" {impl}"),
                prepare)


@register("projection")
def cases(size: str, xp, seed: int) -> list[Case]:
    table = SMALL_SHAPES if size == "small" else PAPER_SHAPES
    return [projection_case("projection", variant, s, "float32", xp, seed) for variant, shapes in table.items() for s in shapes]
