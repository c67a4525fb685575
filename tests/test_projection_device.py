"""The device projection algorithm (kernels.projection.device) run as its NumPy model, and the host passes.

The CUDA kernels follow the model step by step (tests/test_projection_gpu.py holds them to it on a
GPU); here the model is held to float64 references and to the exact NumPy projections.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_projection import bilevel_reference, l1_ball_sort

from kernels.errors import InputError
from kernels.projection import (
    bilevel_impl,
    mixed_norm,
    multilevel_impl,
    project_l11_bilevel,
    project_l12_bilevel,
    project_l1inf_bilevel,
    project_multilevel,
)
from kernels.projection.device import _candidates, _heuristic, group_layout, l1_threshold, launch_plan

BILEVEL = {"inf": project_l1inf_bilevel, "l1": project_l11_bilevel, "l2": project_l12_bilevel}
FAST = settings(max_examples=60, deadline=None)
TOL = {np.float64: 1e-12, np.float32: 2e-6}


@st.composite
def with_ties(draw, shape, dtype=np.float64):
    """Entries from a few values (many exact ties, zeros, equal group maxima) or free floats; never all zero."""
    if draw(st.booleans()):
        pool = draw(st.lists(st.floats(-4, 4, width=32), min_size=1, max_size=4))
        y = np.array(draw(st.lists(st.sampled_from(pool), min_size=int(np.prod(shape)), max_size=int(np.prod(shape)))),
                     dtype=dtype).reshape(shape)
    else:
        y = draw(arrays(dtype, shape, elements=st.floats(-10, 10, width=32)))
    assume(np.abs(y).max() > 1e-3)
    return y


@st.composite
def matrices(draw, dtype=np.float64, max_side=12):
    shape = draw(st.tuples(st.integers(1, max_side), st.integers(1, max_side)))
    return draw(with_ties(shape, dtype))


# ----------------------------------------------------------------------------- ℓ1 threshold search


@FAST
@given(st.integers(1, 60).flatmap(lambda n: with_ties((n,))), st.floats(0, 1.3), st.sampled_from([0, 1, 2, 64]))
def test_threshold_matches_sort_reference(v, frac, max_sweeps):
    """Any sweep cap (0 forces the bisection finish at once) gives the sort-based projection."""
    v = np.abs(v)
    r = frac * float(v.sum())
    u, (tau, sweeps, bisections) = l1_threshold(v, r, max_sweeps)
    np.testing.assert_allclose(u, l1_ball_sort(v, r), atol=1e-12 * max(1.0, v.max()))
    assert sweeps <= max_sweeps
    if r < v.sum() and r > 0:
        assert u.sum() == pytest.approx(r, rel=1e-12)


def test_threshold_bisection_finish_agrees_with_sweeps():
    """With no sweeps allowed, bisection plus the exact finish lands on the sweeps' τ (and the sort's)."""
    v = np.random.default_rng(3).exponential(size=20_000)
    r = 0.05 * v.sum()
    u0, (tau0, sweeps0, bis0) = l1_threshold(v, r, 0)
    u, (tau, sweeps, bis) = l1_threshold(v, r)
    assert sweeps0 == 0 and bis0 > 30 and 0 < sweeps < 20 and bis == 0
    assert tau0 == pytest.approx(tau, rel=1e-13)
    np.testing.assert_allclose(u0, l1_ball_sort(v, r), atol=1e-12)


def test_threshold_edge_states():
    v = np.array([3.0, 1.0, 0.0, 2.0])
    assert np.array_equal(l1_threshold(v, 6.0)[0], v)  # inside: untouched
    assert np.array_equal(l1_threshold(v, 0.0)[0], np.zeros(4))
    u, (tau, _, _) = l1_threshold(np.array([1.0, np.inf]), 1.0)
    assert np.isnan(tau) and np.isnan(u).all()
    u32 = l1_threshold(np.array([3.0, 1.0], np.float32), 1.0)[0]
    assert u32.dtype == np.float32 and np.array_equal(u32, np.array([1.0, 0.0], np.float32))


# ----------------------------------------------------------------------------- bilevel, multilevel


@FAST
@given(matrices(), st.floats(0, 1.2), st.sampled_from([0, 1]), st.sampled_from(["inf", "l1", "l2"]))
def test_device_model_matches_definition(y, frac, axis, inner):
    r = frac * mixed_norm(y, ("l1", inner), axes=(1 - axis, axis))
    got = BILEVEL[inner](y, r, axis, impl="device")
    np.testing.assert_allclose(got, bilevel_reference(y, r, axis, inner), atol=1e-9)


@FAST
@given(st.sampled_from([np.float32, np.float64]).flatmap(lambda d: st.tuples(st.just(d), matrices(d, max_side=40))),
       st.floats(0.01, 1.2), st.sampled_from([0, 1]), st.sampled_from(["inf", "l1", "l2"]))
def test_device_model_matches_host_path(dy, frac, axis, inner):
    """Against the NumPy host projection, both dtypes: equal to the dtype's rounding of the group norms."""
    dtype, y = dy
    r = frac * mixed_norm(y.astype(np.float64), ("l1", inner), axes=(1 - axis, axis))
    host = BILEVEL[inner](y, r, axis)
    got = BILEVEL[inner](y, r, axis, impl="device")
    assert got.dtype == dtype and got.shape == y.shape
    scale = float(np.abs(y).max()) * max(y.shape)
    np.testing.assert_allclose(got, host, atol=TOL[dtype] * scale)
    if inner == "inf" and dtype == np.float64:
        assert np.array_equal(got, host)  # max and clip are exact; τ rounds alike at this precision


@FAST
@given(arrays(np.float64, st.tuples(*[st.integers(1, 5)] * 3), elements=st.floats(-10, 10)),
       st.floats(0, 1.2), st.sampled_from(["inf", "l2"]), st.permutations([0, 1, 2]))
def test_multilevel_device_model(t, frac, p, axes):
    assume(np.abs(t).max() > 1e-3)
    norms = ("l1", p, p)
    r = frac * mixed_norm(t, norms, axes)
    got = project_multilevel(t, r, norms, axes, impl="device")
    np.testing.assert_allclose(got, project_multilevel(t, r, norms, axes), atol=1e-9)
    assert mixed_norm(got, norms, axes) <= r * (1 + 1e-9) + 1e-12


def test_device_model_nonfinite_gives_nan():
    y = np.array([[1.0, np.nan], [2.0, 3.0]])
    assert np.isnan(project_l1inf_bilevel(y, 1.0, impl="device")).all()
    assert np.isnan(project_l12_bilevel(np.full((2, 2), 1e300), 1.0, impl="device")).all()


def test_impl_names_and_errors():
    y = np.ones((3, 4), np.float32)
    assert bilevel_impl(y) == "bilevel_l1inf_host"
    assert bilevel_impl(y, "l2", impl="device") == "bilevel_l12_device"
    assert bilevel_impl(y, "l1", impl="xp") == "bilevel_l11_xp"
    assert multilevel_impl(np.ones((2, 3, 4))) == "multilevel_l1_inf_inf_host"
    with pytest.raises(InputError, match="impl"):
        project_l1inf_bilevel(y, 1.0, impl="fast")
    with pytest.raises(InputError, match="device path takes norms"):
        project_multilevel(np.ones((2, 3, 4)), 1.0, ("l1", "l1", "inf"), impl="device")


# ----------------------------------------------------------------------------- host passes


@pytest.mark.parametrize("inner", ["inf", "l2", "l1"])
@pytest.mark.parametrize("axis", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_host_whole_array_bit_identical_to_blocked(inner, axis, dtype):
    """The whole-array host passes give today's 64-column-block bits (impl='xp' keeps that path)."""
    rng = np.random.default_rng(7)  # rows and columns of very different scale, so groups get zeroed
    y = (rng.standard_normal((600, 1500)) * rng.exponential(size=1500) * rng.exponential(size=(600, 1))).astype(dtype)
    r = 0.1 * mixed_norm(y, ("l1", inner), axes=(1 - axis, axis))
    blocked = BILEVEL[inner](y, r, axis, impl="xp")
    assert np.any(~np.any(blocked != 0, axis=axis))  # the radius prunes whole groups
    for workers in (1, 3):
        assert np.array_equal(BILEVEL[inner](y, r, axis, workers=workers), blocked)


# ----------------------------------------------------------------------------- launch shapes


def test_layouts():
    y = np.zeros((5, 7))
    assert group_layout(y) == "cols" and group_layout(y.T) == "rows"
    assert group_layout(np.zeros((5, 1))) == "rows" and group_layout(y[:, ::2]) == "cols"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 5000), st.integers(1, 5000), st.sampled_from(["cols", "rows"]),
       st.sampled_from(["inf", "l2", "l1"]), st.sampled_from([8, 132]))
def test_launch_plan_covers_every_element_within_limits(n, G, layout, inner, sms):
    """NumPy model of the kernels' index maps: each stage touches every element once, within CUDA's limits."""
    for cfg in _candidates(n, G, layout, sms):
        plan = launch_plan(n, G, layout, inner, cfg, 4)
        for grid, block, _, smem in plan.values():
            assert all(1 <= d <= 2**31 - 1 for d in grid) and all(d <= 65535 for d in grid[1:])
            assert int(np.prod(block)) <= 1024 and int(np.prod(block)) % 32 == 0 and smem <= 48 * 1024
        (gx, gy), block, (_, _, part), _ = plan["norms"]
        if layout == "cols":  # blocks (tile, split) cover columns tile*32 + tx and rows [s*part, (s+1)*part)
            assert gx * 32 >= G > (gx - 1) * 32 and gy * part >= n and (gy - 1) * part < n
        else:
            assert gx == G and gy * part >= n and (gy - 1) * part < n
        grid, block, sizes, _ = plan["apply"]
        if inner == "l1":
            assert grid == (G,) and sizes == ((n, 1, G) if layout == "cols" else (n, n, 1))
        elif layout == "cols":
            assert grid[0] * block[0] >= G and grid[1] * sizes[2] >= n and (grid[1] - 1) * sizes[2] < n
        else:
            assert grid[0] == G and grid[1] * sizes[1] >= n and (grid[1] - 1) * sizes[1] < n
    assert _heuristic(n, G, layout, sms) == _candidates(n, G, layout, sms)[0]


def test_every_reachable_impl_is_described():
    """Each name a trace can carry for the bilevel / fused multilevel paths has its description."""
    from kernels.impls import Record, describe, passes

    y = np.ones((4, 6), np.float32)
    names = {bilevel_impl(y, inner, impl=impl) for inner in BILEVEL for impl in ("host", "device", "xp")}
    names |= {multilevel_impl(np.ones((2, 3, 4)), ("l1", p, p), impl="device") for p in ("inf", "l2")}
    for name in names:
        d = describe(name)
        steps = d.steps(Record(d.kernel, "float32", shapes={"y": [4, 6]}, params={"splits": 1}))
        assert steps, name
        if name.endswith("_device"):  # norms, l1_threshold, apply
            assert passes(name, (4, 6)) == (2, 1) and [s.launches for s in steps] == [3]
