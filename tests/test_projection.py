"""Tests for kernels.projection: ball membership, definitions, exactness, threads, bad input."""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import kernels
from kernels.errors import InputError
from kernels.projection import (
    mixed_norm,
    project_l11_bilevel,
    project_l12_bilevel,
    project_l1_ball,
    project_l1inf_bilevel,
    project_l1inf_exact,
    project_multilevel,
)

BILEVEL = {"inf": project_l1inf_bilevel, "l1": project_l11_bilevel, "l2": project_l12_bilevel}
ALL = [(project_l1inf_bilevel, "inf"), (project_l11_bilevel, "l1"), (project_l12_bilevel, "l2"),
       (project_l1inf_exact, "inf")]
FAST = settings(max_examples=40, deadline=None)

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def matrices(draw, max_side=8):
    shape = draw(st.tuples(st.integers(1, max_side), st.integers(1, max_side)))
    y = draw(arrays(np.float64, shape, elements=finite))
    assume(np.abs(y).max() > 1e-3)  # never all zeros: every property below would be vacuous
    return y


def group_norm(x, inner, axis):
    return mixed_norm(x, ("l1", inner), axes=(1 - axis, axis))


# ----------------------------------------------------------------------------- references


def l1_ball_sort(v, r):
    """Textbook sort-based ℓ1-ball projection (Duchi et al. 2008), element by element."""
    a = np.abs(v).ravel()
    if a.sum() <= r:
        return np.array(v, dtype=float)
    if r == 0:
        return np.zeros(np.shape(v))
    s = np.sort(a)[::-1]
    css = np.cumsum(s)
    rho = max(k for k in range(1, len(s) + 1) if k * s[k - 1] - css[k - 1] + r >= 0)
    tau = (css[rho - 1] - r) / rho
    return (np.sign(v) * np.maximum(np.abs(v) - tau, 0)).reshape(np.shape(v))


def bilevel_reference(y, r, axis, inner):
    """The bilevel definition, group by group in plain Python."""
    groups = [y[:, j] for j in range(y.shape[1])] if axis == 0 else [y[i, :] for i in range(y.shape[0])]
    ord_ = {"inf": np.inf, "l1": 1, "l2": 2}[inner]
    v = np.array([np.linalg.norm(g, ord_) for g in groups])
    u = l1_ball_sort(v, r)
    out = []
    for g, vg, ug in zip(groups, v, u):
        if inner == "inf":
            out.append(np.clip(g, -ug, ug))
        elif inner == "l2":
            out.append(g * (ug / vg) if vg > ug else g)
        else:
            out.append(l1_ball_sort(g, ug))
    return np.stack(out, axis=1 - axis)


def exact_reference(y, r, axis=0, iters=100):
    """Exact ℓ1,∞ projection by nested bisection: on the dual θ, and on every group's clip level μ."""
    groups = np.abs(y if axis == 0 else y.T)
    if groups.max(axis=0).sum() <= r:
        return y.copy()

    def mu_of(theta):  # μ_g solves Σ_i (|y_ig| − μ)_+ = θ; groups with ‖y_g‖₁ ≤ θ vanish
        lo, hi = np.zeros(groups.shape[1]), groups.max(axis=0)
        for _ in range(iters):
            mid = (lo + hi) / 2
            shed_more = np.maximum(groups - mid, 0).sum(axis=0) > theta
            lo, hi = np.where(shed_more, mid, lo), np.where(shed_more, hi, mid)
        return np.where(groups.sum(axis=0) > theta, (lo + hi) / 2, 0.0)

    lo, hi = 0.0, groups.sum(axis=0).max()
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if mu_of(mid).sum() > r else (lo, mid)
    mu = mu_of((lo + hi) / 2)
    return np.clip(y, -mu, mu) if axis == 0 else np.clip(y, -mu[:, None], mu[:, None])


# ----------------------------------------------------------------------------- ℓ1 ball


@FAST
@given(arrays(np.float64, st.integers(1, 40), elements=finite), st.floats(0, 1.5))
def test_l1_ball_matches_sort_reference(v, frac):
    assume(np.abs(v).sum() > 1e-3)
    r = frac * np.abs(v).sum()
    x = project_l1_ball(v, r)
    np.testing.assert_allclose(x, l1_ball_sort(v, r), atol=1e-9)
    assert np.abs(x).sum() <= r * (1 + 1e-12) + 1e-12
    assert np.all(x * v >= 0) and np.all(np.abs(x) <= np.abs(v))


def test_l1_ball_inside_unchanged_and_dtype():
    v = np.array([0.5, -0.25, 0.0], dtype=np.float32)
    x = project_l1_ball(v, 1.0)
    assert x.dtype == np.float32 and np.array_equal(x, v)
    assert np.array_equal(project_l1_ball(v, 0.0), np.zeros(3, np.float32))
    assert project_l1_ball(np.ones((2, 2)), 2.0).shape == (2, 2)


def test_l1_ball_large_vector_against_sort():
    v = np.random.default_rng(1).laplace(size=20_000)
    np.testing.assert_allclose(project_l1_ball(v, 50.0), l1_ball_sort(v, 50.0), atol=1e-10)


# ----------------------------------------------------------------------------- bilevel


@FAST
@given(matrices(), st.floats(0, 1.2), st.sampled_from([0, 1]), st.sampled_from(["inf", "l1", "l2"]))
def test_bilevel_matches_definition(y, frac, axis, inner):
    r = frac * group_norm(y, inner, axis)
    x = BILEVEL[inner](y, r, axis)
    np.testing.assert_allclose(x, bilevel_reference(y, r, axis, inner), atol=1e-9)


@FAST
@given(matrices(), st.floats(0, 1.2), st.sampled_from([0, 1]), st.sampled_from(range(len(ALL))))
def test_in_ball_and_signs(y, frac, axis, which):
    fn, inner = ALL[which]
    r = frac * group_norm(y, inner, axis)
    x = fn(y, r, axis)
    assert x.shape == y.shape and x.dtype == y.dtype
    assert group_norm(x, inner, axis) <= r * (1 + 1e-9) + 1e-12
    assert np.all(x * y >= 0) and np.all(np.abs(x) <= np.abs(y) + 1e-15)


@FAST
@given(matrices(), st.floats(1.0 + 1e-9, 3.0), st.sampled_from([0, 1]), st.sampled_from(range(len(ALL))))
def test_inside_ball_unchanged(y, scale, axis, which):
    fn, inner = ALL[which]
    assert np.array_equal(fn(y, scale * group_norm(y, inner, axis), axis), y)


@FAST
@given(matrices(), st.lists(st.floats(0, 1.2), min_size=2, max_size=5), st.sampled_from(range(len(ALL))))
def test_zero_groups_grow_as_radius_shrinks(y, fracs, which):
    fn, inner = ALL[which]
    norm = group_norm(y, inner, 0)
    zeroed = [set(np.flatnonzero(~np.any(fn(y, f * norm, 0) != 0, axis=0))) for f in sorted(fracs, reverse=True)]
    zero_in_y = set(np.flatnonzero(~np.any(y != 0, axis=0)))
    assert zeroed[0] >= zero_in_y
    assert all(a <= b for a, b in zip(zeroed, zeroed[1:]))
    assert len(project_l1inf_bilevel(y, 0.0).nonzero()[0]) == 0


def test_bilevel_nd_axis_and_float32():
    t = np.random.default_rng(2).standard_normal((4, 5, 6)).astype(np.float32)
    x = project_l1inf_bilevel(t, 2.0, axis=1)
    assert x.dtype == np.float32 and x.shape == t.shape
    groups = np.moveaxis(x, 1, -1).reshape(-1, 5)
    assert np.abs(groups).max(axis=1).sum() <= 2.0 * (1 + 1e-5)


def test_integer_input_promoted():
    x = project_l1inf_bilevel(np.array([[3, -1], [2, 5]]), 4.0)
    assert x.dtype == np.float64 and np.abs(x).max(axis=0).sum() == pytest.approx(4.0)


# ----------------------------------------------------------------------------- exact


@settings(max_examples=25, deadline=None)
@given(matrices(max_side=6), st.floats(0.05, 0.95), st.sampled_from([0, 1]))
def test_exact_matches_bisection_reference(y, frac, axis):
    r = frac * group_norm(y, "inf", axis)
    x = project_l1inf_exact(y, r, axis)
    np.testing.assert_allclose(x, exact_reference(y, r, axis), atol=1e-7 * max(1.0, np.abs(y).max()))
    # the exact projection is the closest point of the ball: never farther than the bilevel one
    assert np.linalg.norm(x - y) <= np.linalg.norm(project_l1inf_bilevel(y, r, axis) - y) + 1e-9


def test_exact_matches_generic_solver():
    from scipy.optimize import LinearConstraint, minimize

    y = np.array([[3.0, -1.0, 0.2, 2.0], [-2.5, 0.5, 0.1, 1.5], [1.0, 2.0, -0.3, -0.5]])
    n, m, r = *y.shape, 3.0
    # variables: X (n·m) then t (m); |X_ij| ≤ t_j, Σ t_j ≤ r
    rows = []
    for i in range(n):
        for j in range(m):
            for sgn in (1, -1):
                a = np.zeros(n * m + m)
                a[i * m + j], a[n * m + j] = -sgn, 1
                rows.append(a)
    rows.append(np.r_[np.zeros(n * m), -np.ones(m)])
    lb = np.r_[np.zeros(2 * n * m), -r]
    cons = LinearConstraint(np.array(rows), lb, np.inf)
    obj = lambda z: 0.5 * np.sum((z[: n * m] - y.ravel()) ** 2)  # noqa: E731
    jac = lambda z: np.r_[z[: n * m] - y.ravel(), np.zeros(m)]  # noqa: E731
    z0 = np.zeros(n * m + m)
    res = minimize(obj, z0, jac=jac, constraints=[cons], method="trust-constr",
                   options={"gtol": 1e-10, "xtol": 1e-12, "maxiter": 5000})
    np.testing.assert_allclose(project_l1inf_exact(y, r), res.x[: n * m].reshape(n, m), atol=1e-4)


def test_exact_ties_and_zero_groups():
    y = np.array([[1.0, 1.0, 0.0, -1.0], [1.0, -1.0, 0.0, 1.0]])
    x = project_l1inf_exact(y, 1.5)
    assert np.abs(x).max(axis=0).sum() == pytest.approx(1.5)
    np.testing.assert_allclose(np.abs(x).max(axis=0), [0.5, 0.5, 0.0, 0.5])


# ----------------------------------------------------------------------------- multilevel


@FAST
@given(arrays(np.float64, st.tuples(*[st.integers(1, 5)] * 3), elements=finite), st.floats(0, 1.2))
def test_trilevel_matches_definition(t, frac):
    assume(np.abs(t).max() > 1e-3)
    r = frac * mixed_norm(t, ("l1", "inf", "inf"))
    x = project_multilevel(t, r)
    u = l1_ball_sort(np.abs(t).reshape(len(t), -1).max(axis=1), r)
    np.testing.assert_allclose(x, np.clip(t, -u[:, None, None], u[:, None, None]), atol=1e-9)
    assert mixed_norm(x, ("l1", "inf", "inf")) <= r * (1 + 1e-9) + 1e-12


@FAST
@given(arrays(np.float64, st.tuples(*[st.integers(1, 4)] * 3), elements=finite),
       st.floats(0, 1.2), st.tuples(*[st.sampled_from(["l1", "l2", "inf"])] * 3), st.permutations([0, 1, 2]))
def test_multilevel_in_ball_any_norms(t, frac, norms, axes):
    assume(np.abs(t).max() > 1e-3)
    r = frac * mixed_norm(t, norms, axes)
    x = project_multilevel(t, r, norms, axes)
    assert mixed_norm(x, norms, axes) <= r * (1 + 1e-9) + 1e-12
    assert np.all(x * t >= 0)


@pytest.mark.parametrize("inner", ["inf", "l1", "l2"])
def test_multilevel_two_levels_is_bilevel(inner):
    y = np.random.default_rng(3).standard_normal((7, 9))
    for axis in (0, 1):
        np.testing.assert_allclose(project_multilevel(y, 3.0, ("l1", inner), axes=(1 - axis, axis)),
                                   BILEVEL[inner](y, 3.0, axis), atol=1e-12)


# ----------------------------------------------------------------------------- threads


@pytest.mark.parametrize("fn", [project_l1inf_bilevel, project_l11_bilevel, project_l12_bilevel, project_l1inf_exact])
@pytest.mark.parametrize("axis", [0, 1])
def test_threads_bit_identical(fn, axis):
    y = np.random.default_rng(4).standard_normal((300, 2000)).astype(np.float32)
    y = y if axis == 0 else np.ascontiguousarray(y.T)
    one = fn(y, 40.0, axis, workers=1)
    for w in (2, 3):
        assert np.array_equal(one, fn(y, 40.0, axis, workers=w))
    assert np.any(~np.any(one != 0, axis=axis))  # the radius really prunes groups


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("call, match", [
    (lambda: project_l1inf_bilevel(np.ones((2, 2)), -1.0), "radius"),
    (lambda: project_l1inf_exact(np.ones((2, 2)), float("nan")), "radius"),
    (lambda: project_l1_ball(np.ones(3), "big"), "radius"),
    (lambda: project_l12_bilevel(np.ones((2, 2)), 1.0, axis=2), "axis"),
    (lambda: project_l1inf_exact(np.ones((2, 2)), 1.0, axis=1.0), "axis"),
    (lambda: project_l1inf_bilevel(np.array([[1.0, np.nan]]), 1.0), "NaN"),
    (lambda: project_l1inf_exact(np.array([[1.0, np.inf]]), 1.0), "NaN"),
    (lambda: project_l11_bilevel(np.array([[1.0, -np.inf]]), 1.0), "NaN"),
    (lambda: project_l1_ball(np.array([np.nan]), 1.0), "NaN"),
    (lambda: project_multilevel(np.ones((2, 2, 2)), 1.0, ("l1", "l3", "inf")), "unknown norm"),
    (lambda: project_multilevel(np.ones((2, 2)), 1.0, ("l1", "inf", "inf")), "one norm per axis"),
    (lambda: project_multilevel(np.ones((2, 2)), 1.0, ("l1", "inf"), axes=(0, 0)), "permutation"),
    (lambda: project_l1inf_bilevel(np.ones((2, 2)), 1.0, workers=0), "workers"),
    (lambda: project_l1inf_bilevel(np.float64(1.0), 1.0), "scalar"),
    (lambda: project_l1inf_bilevel(np.ones(2, complex), 1.0), "dtype"),
])
def test_bad_input_one_line_error(call, match):
    with pytest.raises(InputError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_huge_values_overflow_message():
    with pytest.raises(InputError, match="overflow"):
        project_l12_bilevel(np.full((2, 2), 1e300), 1.0)


def test_lazy_exports():
    for name in ("project_l1inf_bilevel", "project_l11_bilevel", "project_l12_bilevel",
                 "project_l1inf_exact", "project_multilevel", "project_l1_ball"):
        assert callable(getattr(kernels, name))


class _DeviceLikeNumpy:
    """NumPy under another name: drives the CuPy code paths (sort-based ℓ1, one block) on the host."""

    __name__ = "devicelike"

    def __getattr__(self, name):
        return getattr(np, name)


@pytest.mark.parametrize("fn", [project_l1inf_bilevel, project_l11_bilevel, project_l12_bilevel, project_l1inf_exact])
def test_device_formulas_match_host(fn, monkeypatch):
    rng = np.random.default_rng(5)
    y, v, t = rng.standard_normal((60, 700)), rng.laplace(size=5000), rng.standard_normal((4, 6, 8))
    r = 0.15 * group_norm(y, "inf", 0)
    host = fn(y, r, 0, workers=2), project_l1_ball(v, 20.0), project_multilevel(t, 2.0, ("l1", "l1", "inf"))
    monkeypatch.setattr("kernels.projection.array_module", lambda *a: _DeviceLikeNumpy())
    np.testing.assert_allclose(fn(y, r, 0), host[0], atol=1e-10)
    np.testing.assert_allclose(project_l1_ball(v, 20.0), host[1], atol=1e-10)
    np.testing.assert_allclose(project_multilevel(t, 2.0, ("l1", "l1", "inf")), host[2], atol=1e-10)


def test_exact_projection_radius_below_precision_gives_zero():
    """Regression (found by hypothesis): C ~ 1e-43 against a norm of 50 used to divide by zero."""
    from kernels import project_l1inf_exact

    y = np.full((1, 5), 10.0)
    x = project_l1inf_exact(y, 50.0 * 1.401298464324817e-45, axis=1)
    assert np.all(np.abs(x) <= 1e-40)
