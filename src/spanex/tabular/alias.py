"""Walker's alias method with a vectorized O(N log N) build (numpy only).

An alias table for weights p over {0, ..., N-1} holds, per bucket j, a threshold ``prob[j]`` in [0, 1]
and an ``alias[j]``. A draw picks a bucket j uniformly and returns j with probability prob[j], else
alias[j]; so the table represents

    P(y) = ( prob[y] + sum_{j: alias[j] = y} (1 - prob[j]) ) / N.                           (*)

A draw costs O(1) (two gathers), against O(log N) for inverse-CDF sampling (``searchsorted``).

Build: the "chain" form of Vose's construction, in one vectorized pass. Scale t = N p / sum(p).
Buckets with t < 1 are the *smalls*, each with a deficit d = 1 - t in (0, 1]; the others are the
*donors*, each with an excess e = t - 1 >= 0; sum(e) - sum(d) = sum(t) - N = 0. With D and E the
prefix sums of d (smalls in index order) and of e (donors in index order):

- small i keeps prob = t_i and takes as alias the donor whose excess interval (E_{k-1}, E_k] holds the
  *start* D_{i-1} of its deficit: k(i) = min{k : E_k >= D_{i-1}} (one ``searchsorted``);
- donor k keeps prob = c_k = 1 + E_k - D(k), where D(k) = D_{i_k} is the total deficit of the smalls
  given to donors 1..k (i_k = #{i : D_{i-1} <= E_k}, a second ``searchsorted``), and takes donor k+1
  as its alias. c_k <= 1: if D_{i_k} < E_k, the next deficit would start at or before E_k and belong
  to donors 1..k, so this happens only once the smalls run out (and there c_k = 1 at the last donor);
  c_k > 0: the last deficit given to donors 1..k started at or before E_k and is at most 1 long.

This is exactly the sequential algorithm "the active donor covers deficits while its mass is >= 1;
once below 1 it keeps that mass and the next donor first covers its residual deficit" (tested against
a plain-Python version): the residual deficit 1 - c_{k-1} of donor k-1 goes straight to donor k, so
there is no second round of smalls to process and the worst case is the same single pass. Check of
(*) for donor k: c_k + (1 - c_{k-1}) + (D(k) - D(k-1)) = 1 + E_k - E_{k-1} = t_k. The adversarial
case "one zero mass, N - 1 equal masses just above 1/N" is one chain through all donors
(c_k = k e, alias k -> k+1), built by the same two ``searchsorted`` calls.

Round-off. The prefix sums reach O(N) while c_k is O(1): plain float64 would lose ~N * 1e-16 in every
c_k, and scaling p by a rounded N / sum(p) shifts all N masses the same way, a total of ~N * 1e-16 that
the donors would absorb. So the scaled masses t (``_scaled_masses``) and the prefix sums
(``_prefix_sums2``: TwoSum recovers the rounding error of every addition) are double-doubles, the
deficits and excesses are formed exactly, the smalls near 1 are rounded by error diffusion
(``_diffuse_rounding``) and the remaining residue (O(1e-16) relative to the donors' mass) is spread
over the donors in proportion to t. Every bucket's implied probability (*) then matches p / sum(p)
to a few units of 1e-16 relative (tests: 1e-12 on random, degenerate and adversarial inputs).
Draws themselves resolve probabilities on the 2^-53 grid of the uniforms (see ``sample``).
"""

from __future__ import annotations

import numpy as np

from ..core.errors import check_finite_array, check_int


def check_weights(name: str, p) -> np.ndarray:
    """A finite, non-negative 1-d float array with a positive entry (a distribution up to scale)."""
    p = check_finite_array(name, p, ndim=1)
    if p.size == 0:
        raise ValueError(f"{name} must be non-empty")
    if np.any(p < 0):
        raise ValueError(f"{name} must be non-negative, min entry is {p.min()!r}")
    if not p.max() > 0:
        raise ValueError(f"{name} must have a positive entry (it is normalized to sum to 1), got all zeros")
    return p


def _two_sum(a, b):
    """(s, t) with s = fl(a + b) and s + t = a + b exactly (Knuth's TwoSum, elementwise)."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def _split(a):
    """Dekker's split a = h + l, each half with <= 26 significant bits (|a| < 2**996)."""
    c = 134217729.0 * a  # 2**27 + 1
    h = c - (c - a)
    return h, a - h


def _two_prod(a, b):
    """(x, y) with x = fl(a b) and x + y = a b exactly (Dekker's TwoProduct, no FMA needed)."""
    x = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return x, al * bl - (((x - ah * bh) - al * bh) - ah * bl)


def _prefix_sums2(hi: np.ndarray, lo: np.ndarray):
    """Inclusive prefix sums of hi + lo as (S, C): S = np.cumsum(hi), and S + C equals the exact prefix
    sums up to O(eps^2 * sum|hi| + eps * sum|lo|) (C collects the rounding error of every addition)."""
    S = np.cumsum(hi)
    err = lo.copy()
    if S.size > 1:
        s, t = _two_sum(S[:-1], hi[1:])
        # s equals S[1:] for a sequential cumsum; (s - S[1:]) keeps this exact even if it did not
        err[1:] += (s - S[1:]) + t
    return S, np.cumsum(err)


def _scaled_masses(p: np.ndarray):
    """t = N p / sum(p) as a double-double (t_hi, t_lo), accurate to O(eps^2) relative.

    Forming t in plain floats would scale every entry by the same rounded factor N / sum(p): a
    systematic relative error of up to ~eps that adds up to ~N eps over the buckets, all of which the
    donors would have to absorb. In double-double, t_hi is t rounded once per entry (uniform p gives
    t = 1 exactly) and t_lo carries the remainder."""
    N = p.size
    w = np.ldexp(p, -np.frexp(p.max())[1])           # exact rescale by a power of two: max(w) in [0.5, 1)
    Z_hi, Z_lo = _prefix_sums2(w, np.zeros_like(w))
    Z_hi, Z_lo = _two_sum(Z_hi[-1], Z_lo[-1])        # Z = sum(w) in [0.5, N)
    a_hi, a_lo = _two_prod(w, float(N))              # N w exactly (N < 2**53)
    t_hi = a_hi / Z_hi
    b_hi, b_lo = _two_prod(t_hi, Z_hi)               # t_hi Z_hi exactly
    t_lo = ((a_hi - b_hi) + (a_lo - b_lo) - t_hi * Z_lo) / Z_hi   # (N w - t_hi Z) / Z
    return t_hi, t_lo


def _diffuse_rounding(t_hi: np.ndarray, t_lo: np.ndarray, S: np.ndarray) -> None:
    """Round the smalls with t in [1/2, 1) so that their rounding errors do not pile up (in place).

    A small keeps t_hi, so the donors must absorb the smalls' total rounding error sum_S t_lo. For
    t < 1/2 that is harmless: |t_lo| <= eps t / 2 <= eps (1 - t) / 2, at most eps/2 of the deficit the
    donors cover anyway. Near 1 it is not: N identical masses just below 1 all round the same way and
    hand ~N eps/2 to donors whose total mass may be ~1. On [1/2, 1) the grid is uniform, u = 2^-53, so
    first-order error diffusion (sigma-delta) picks t_hi + a_i u, a_i in {-1, 0, 1}, keeping every
    partial sum of the errors within u/2 (and each entry within 3u/2 of t)."""
    idx = S[t_hi[S] >= 0.5]
    if idx.size == 0:
        return
    u = 2.0**-53
    k = np.rint(np.cumsum(t_lo[idx]) / u)            # sum_{j<=i} a_j = round(sum_{j<=i} t_lo_j / u)
    a = np.diff(k, prepend=0.0) * u
    t_hi[idx] += a                                    # exact: multiples of u on [1/2 - u, 1]
    t_lo[idx] -= a


_CHUNK = 16384  # draws per vectorized step: keeps the temporaries in cache (3x faster at batch 1e5, N = 1e3)


class AliasTable:
    """Alias table of the distribution proportional to ``p`` (see the module docstring).

    Attributes
    ----------
    prob : (N,) float64 thresholds in [0, 1].
    alias : (N,) int32 (int64 when N >= 2**31) alias indices.

    ``sample(n, rng)`` draws n i.i.d. indices; ``probs()`` is the exact law (*) the table emits.
    """

    __slots__ = ("prob", "alias")

    def __init__(self, p, *, name: str = "p"):
        p = check_weights(name, p)
        N = p.size
        t_hi, t_lo = _scaled_masses(p)
        donor = t_hi >= 1
        if not donor.any():  # all t < 1 only by round-off (sum t = N): the largest mass is the donor
            donor[np.argmax(t_hi)] = True
        S, L = np.flatnonzero(~donor), np.flatnonzero(donor)

        _diffuse_rounding(t_hi, t_lo, S)
        # A small keeps prob = t_hi; its deficit is what the table must cover given the stored value,
        # 1 - t_hi, formed exactly. A donor's excess t - 1 is exact too (lo parts).
        d_hi, d_lo = _two_sum(1.0, -t_hi[S])
        e_hi, e_lo = _two_sum(t_hi[L], -1.0)
        e_lo += t_lo[L]
        e_lo += np.minimum(e_hi, 0.0)                  # a forced donor may have t < 1 by round-off:
        np.maximum(e_hi, 0.0, out=e_hi)                # keep the hi parts monotone, the exact value in lo
        D_hi, D_lo = _prefix_sums2(d_hi, d_lo)
        E_hi, E_lo = _prefix_sums2(e_hi, e_lo)
        # The residue R = D_total - E_total = N - sum_S t_hi - sum_L t = sum_S t_lo (the smalls' rounding,
        # plus O(eps^2)); spreading it over the donors in proportion to t makes the total excess equal
        # the total deficit, so the last donor ends with c = 1.
        D_tot = (D_hi[-1], D_lo[-1]) if S.size else (0.0, 0.0)
        R = (D_tot[0] - E_hi[-1]) + (D_tot[1] - E_lo[-1])
        tL = np.cumsum(t_hi[L])
        E_lo += R * (tL / tL[-1])

        # small i -> donor k(i) = min{k : E_k >= D_{i-1}} (starts D_{i-1}: exclusive prefix sums)
        start_hi = np.concatenate(([0.0], D_hi))[:-1]
        k_of_i = np.minimum(np.searchsorted(E_hi, start_hi, side="left"), L.size - 1)
        # donor k: D(k) = D_{i_k}, i_k = #{i : D_{i-1} <= E_k}; c_k = 1 + (E_k - D(k)) in double-double
        i_k = np.searchsorted(start_hi, E_hi, side="right")
        Dk_hi = np.concatenate(([0.0], D_hi))[i_k]
        Dk_lo = np.concatenate(([0.0], D_lo))[i_k]
        c = 1.0 + ((E_hi - Dk_hi) + (E_lo - Dk_lo))
        np.clip(c, 0.0, 1.0, out=c)  # round-off only (|excursion| = O(eps)); exact c lies in (0, 1]

        prob = np.ones(N)
        alias = np.arange(N, dtype=np.int32 if N < 2**31 else np.int64)
        prob[S] = t_hi[S]
        alias[S] = L[k_of_i]
        prob[L] = c
        alias[L[:-1]] = L[1:]              # donor k's residual deficit 1 - c_k is covered by donor k+1
        prob[L[-1]] = 1.0                  # the last donor keeps its whole bucket (c = 1 up to round-off)
        self.prob, self.alias = prob, alias

    @property
    def n(self) -> int:
        """Number of outcomes N."""
        return self.prob.size

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n i.i.d. indices (int64 array) from the table's law.

        One uniform u per draw (exactly as inverse-CDF sampling consumes the generator): bucket
        j = floor(u N), kept iff frac(u N) < prob[j]. So ``sample(n)`` equals n successive
        ``sample(1)`` calls on the same generator. Within a bucket the coin frac(u N) moves on a grid of
        spacing <= N 2^-53, so each outcome's probability is resolved to ~2^-53 absolute (as with the
        inverse CDF, whose u has the same grid); an outcome with p = 0 is never drawn (prob = 0, and
        it is nobody's alias).
        """
        n = check_int("n", n, low=0)
        N = self.prob.size
        # j = floor(u N) <= N - 1: u <= 1 - 2^-53 and N < 2^53, so u N lies more than half an ulp below
        # N unless N is a power of two, where it is exact; either way fl(u N) < N.
        if n == 1:  # scalar path: a size-1 draw is common (one anchor, one reference draw) and the
            v = rng.random() * N  # array path's fixed cost is several times a scalar draw's
            j = int(v)
            return np.array([j if v - j < self.prob[j] else self.alias[j]], dtype=np.int64)
        if n <= _CHUNK:
            return self._draw(rng.random(n))
        out = np.empty(n, dtype=np.int64)  # in chunks (same uniforms, same order): cache-sized temporaries
        for s in range(0, n, _CHUNK):
            out[s:s + _CHUNK] = self._draw(rng.random(min(_CHUNK, n - s)))
        return out

    def _draw(self, v: np.ndarray) -> np.ndarray:
        """The draws for uniforms v (overwritten)."""
        v *= self.prob.size
        j = v.astype(np.int64)             # floor, v >= 0
        v -= j                             # the coin: frac(u N), exact
        return np.where(v < self.prob.take(j), j, self.alias.take(j))

    def probs(self) -> np.ndarray:
        """The exact law (*) the table represents (sums to 1 up to round-off)."""
        N = self.prob.size
        return (self.prob + np.bincount(self.alias, weights=1.0 - self.prob, minlength=N)) / N
