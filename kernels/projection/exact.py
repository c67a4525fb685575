"""Exact ℓ1,∞-ball projection core: per-group thresholds from the dual variable (Quattoni 2009)."""

from __future__ import annotations

__all__ = ["group_breakpoints", "l1inf_thresholds"]

_MAX_NEWTON = 200


def group_breakpoints(absy, csum_out, b_out, xp) -> None:
    """Fill prefix sums S_k and breakpoints b_k = S_k − k·s_k of each row of ``absy`` (|Y| per group).

    ``s`` is the row sorted in descending order. Rows are independent, so callers may
    fill disjoint row blocks from several threads.
    """
    s = xp.sort(-absy, axis=1)  # ascending negatives = descending magnitudes, contiguous
    xp.negative(s, out=s)
    xp.cumsum(s, axis=1, out=csum_out)
    s *= xp.arange(1, s.shape[1] + 1, dtype=s.dtype)
    xp.subtract(csum_out, s, out=b_out)


def l1inf_thresholds(csum, b, radius: float, xp):
    """Per-group clipping levels μ of the exact Euclidean projection onto the ℓ1,∞ ball.

    The projection of Y onto {X : Σ_g max_i |X_gi| ≤ C} clips group g at μ_g, where
    (Quattoni, Carreras, Collins & Darrell, ICML 2009, "An efficient projection for
    ℓ1,∞ regularization") every surviving group sheds the same ℓ1 mass θ,
    Σ_i (|Y_gi| − μ_g)_+ = θ, groups with ‖Y_g‖₁ ≤ θ vanish, and Σ_g μ_g = C.
    Quattoni et al. merge all nm breakpoints with one global sort. Here each group
    is sorted on its own and θ is found by Newton's method on the dual function
    M(θ) = Σ_g μ_g(θ), as in the semismooth Newton method of Chu, Zhang, Ji &
    Zhang (ICML 2020, "Semismooth Newton algorithm for efficient projections onto
    ℓ1,∞-norm ball"). M is convex, decreasing and piecewise linear, so Newton from
    θ = 0 rises monotonically and lands exactly once it reaches the root's piece.

    Inputs are trusted (validated by :func:`kernels.projection.project_l1inf_exact`).

    Parameters
    ----------
    csum, b : array, shape (G, n)
        Prefix sums and breakpoints from :func:`group_breakpoints`, float64.
    radius : float
        C, with 0 < C < Σ_g max_i |Y_gi| (the caller handles the trivial cases).
    xp : module
        numpy or cupy, the module ``s`` belongs to.

    Returns
    -------
    array, shape (G,)
        μ_g ≥ 0 with Σ_g μ_g = C up to rounding.
    """
    n = csum.shape[1]
    totals = csum[:, -1]  # ‖Y_g‖₁ from the same sums as the breakpoints, so they agree
    # On [b_k, b_{k+1}) the top k entries of a group are clipped and μ_g = (S_k − θ)/k;
    # b is non-decreasing along each row with b_1 = 0.
    theta = 0.0
    for _ in range(_MAX_NEWTON):
        kk, active, a_coef, b_coef = _segment(b, csum, totals, theta, xp)
        if not b_coef > 0:
            # No group survives at θ: rounding put θ on the largest total, which happens only
            # when C is below the precision of the norms; the projection is 0 to working precision.
            break
        nxt = (a_coef - radius) / b_coef
        # nxt <= theta only through rounding at the root; otherwise stop once the
        # Newton step stays inside the current piece, where M is exactly linear.
        done = not nxt > theta or _inside(b, totals, kk, active, nxt, n, xp)
        theta = nxt
        if done:
            break
    sk = xp.take_along_axis(csum, (kk - 1)[:, None], axis=1)[:, 0]
    mu = (sk - theta) / kk
    return xp.where(active, xp.maximum(mu, 0.0), 0.0)


def _segment(b, csum, totals, theta: float, xp):
    """Piece of each group at θ: its clip count k, whether it survives, and M = A − Bθ."""
    kk = xp.count_nonzero(b <= theta, axis=1)
    active = totals > theta
    kk = xp.maximum(kk, 1)
    sk = xp.take_along_axis(csum, (kk - 1)[:, None], axis=1)[:, 0]
    inv = xp.where(active, 1.0 / kk, 0.0)
    a_coef = float(xp.sum(sk * inv))
    b_coef = float(xp.sum(inv))
    return kk, active, a_coef, b_coef


def _inside(b, totals, kk, active, theta: float, n: int, xp) -> bool:
    """True when θ still lies in every surviving group's current piece (Newton is done)."""
    nxt_idx = xp.minimum(kk, n - 1)[:, None]
    nxt_break = xp.where(kk < n, xp.take_along_axis(b, nxt_idx, axis=1)[:, 0], totals)
    nxt_break = xp.minimum(nxt_break, totals)
    return bool(xp.all(~active | (theta <= nxt_break)))
