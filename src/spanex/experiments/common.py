"""Helpers shared by the experiments: measuring a run, learning curves, budget ladders, plotting.

Every cost an experiment reports is an *outcome*: something the algorithm needed, read off the
Ledger, never a number its parameters fix. Two ways to measure the cost to reach eps:

- **First passage on a learning curve** (SpannerSampling). It logs theta_t every round; the policy
  it would output after round t is the same improper sampler with theta_t (Sigma_span is fixed after
  Phase 1), whose law is exact on tabular instances (``SpannerSamplingPolicy.laws``). The cost to
  reach eps is the T_data (T_comp) at the *first* evaluated round whose suboptimality is <= eps; +inf
  (censored) when the run never gets there. Rounds are evaluated on a geometric grid so the first
  passage is resolved to a few percent at every scale.
- **Budget ladder** (every algorithm). The algorithm runs at sizes s_0 < s_1 < ... (a fresh,
  seed-derived run per rung) until a rung's output is eps-optimal; optional bisection between the last
  failing and the first succeeding rung refines the size. The cost to reach eps is that rung's cost.
  When no rung succeeds the run is *censored*: the cost is only known to exceed the largest one
  tried, and the record says so (``reached = 0``); the analysis treats it as a lower bound.

The output counts. A policy must be sampleable, so the cost of drawing from it (ledger label
'inference', read after ``n_inference`` draws per prompt) is part of the total:
``T_comp_total = training calls + calls per output sample`` (likewise T_data for Best-of-N).

Emitted law, hints. Success is judged on what :func:`spanex.evaluate` reports for the output policy,
which is the law its ``sample()`` emits (clipping and fallbacks included) where the library provides
that; the record keeps ``law`` ('emitted', or 'ideal' where ``evaluate`` predates emitted-law
evaluation) and ``hints`` (the exact quantities a run read, from ``Result.hints``), so every verdict
can say whether its runs were hint-free.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..core.errors import check_int, check_real
from .base import BaseConfig, RunOutput

#: at most this many rounds of a learning curve are evaluated exactly (geometric grid, always the ends)
MAX_CURVE_POINTS = 240
#: trace rows kept in a record (evenly thinned) and per-row keys dropped (large arrays)
MAX_TRACE_ROWS = 200
_DROP_KEYS = ("theta",)


def thin_trace(trace: list[dict], max_rows: int = MAX_TRACE_ROWS) -> list[dict]:
    rows = [{k: v for k, v in r.items() if k not in _DROP_KEYS} for r in trace]
    if len(rows) <= max_rows:
        return rows
    idx = np.unique(np.linspace(0, len(rows) - 1, max_rows).round().astype(int))
    return [rows[i] for i in idx]


# ---- what a run used and what it emits ----------------------------------------------------------------

def hints_of(result) -> list[str]:
    """The exact quantities of the instance a run read (empty for a hint-free run).

    ``Result.hints`` says it directly. Results of versions without that attribute are read from the
    recorded parameter sources: a sampler envelope sized from C_cov / C_cond or from C_cov(pi_theta)
    ('known' rules, in training or in the output policy's sampler), and the exact strong oracle. Call
    it after the output has been sampled, so the output sampler's rule is known.
    """
    h = getattr(result, "hints", None)
    if h is not None:
        return sorted(str(x) for x in h)
    out = set()
    src = str(result.extras.get("resolved", {}).get("M_source", ""))
    if "known" in src:
        out.add("C_cond" if "C_cond" in src else "C_cov")
    ws = result.extras.get("weak_sampler") or {}
    out_stats = getattr(getattr(getattr(result, "policy", None), "sampler", None), "stats", None)  # output's
    if ws.get("rule") == "known" or (isinstance(out_stats, dict) and out_stats.get("rule") == "known"):
        out.add("C_cov(pi_theta)")
    if result.extras.get("strong_oracle") == "exact":
        out.add("exact strong oracle")
    return sorted(out)


def evaluate_output(result, problem, seed: int = 0) -> dict:
    """Suboptimality of a Result's output policy, and which law that is.

    ``law`` is 'emitted' when :class:`spanex.evaluation.Evaluation` reports its ``method`` (the law
    ``sample()`` emits, exactly or by Monte Carlo under the 'eval' label), else 'ideal' (an older
    ``evaluate`` that reports the policy's ideal law).
    """
    import spanex

    ev = spanex.evaluate(result.policy, problem, seed=seed)
    method = getattr(ev, "method", None)
    return {"suboptimality": float(ev.suboptimality), "J": ev.J, "J_star": ev.J_star,
            "eval_method": str(method) if method is not None else ("exact" if ev.exact else "monte_carlo"),
            "law": "emitted" if method is not None else "ideal"}


def envelope_of(result, policy=None) -> float | None:
    """The largest density-ratio envelope M a run's samplers used (train and output), if they say.

    Read from the samplers' own records: ``Result.extras['sampler_envelope']`` (self-calibrating
    samplers), the weak strong-oracle sampler's ``max_M``, SpannerSampling's per-round trace and its
    output sampler's last diagnostics. None when no sampler reported one.
    """
    vals = []
    for key in ("sampler_envelope", "envelope", "max_envelope"):
        v = result.extras.get(key)
        if isinstance(v, (int, float)):
            vals.append(float(v))
    ws = result.extras.get("weak_sampler") or {}
    if ws.get("max_M"):
        vals.append(float(ws["max_M"]))
    vals += [float(r["envelope"]) for r in result.trace if isinstance(r.get("envelope"), (int, float))]
    pol = policy if policy is not None else result.policy
    diag = getattr(pol, "last_diagnostics", None)
    for attr in ("envelope", "M"):
        v = getattr(diag, attr, None)
        if isinstance(v, (int, float, np.floating)):
            vals.append(float(v))
            break
    samp = getattr(pol, "sampler", None)
    st = getattr(samp, "stats", None)
    if isinstance(st, dict) and st.get("max_M"):
        vals.append(float(st["max_M"]))
    return max(vals) if vals else None


def output_cost(result, problem, n_inference: int, rng: np.random.Generator) -> dict:
    """Per-sample cost of the output policy: ``n_inference`` draws at every prompt (label 'inference')."""
    from ..core.ledger import DATA_KINDS, SAMPLE_KINDS

    prompts = range(problem.exact.n_prompts) if problem.exact is not None and hasattr(problem.exact, "n_prompts") \
        else [0]
    n_out = 0
    for x in prompts:
        result.policy.sample(x, n_inference, rng)
        n_out += n_inference
    led = result.ledger
    return {"calls_per_sample": led.total(SAMPLE_KINDS, "inference") / n_out,
            "data_per_sample": led.total(DATA_KINDS, "inference") / n_out,
            "token_calls_per_sample": led.total(("token",), "inference") / n_out}


def measure(result, problem, *, eps: float, n_inference: int, seed: int) -> dict:
    """Everything an experiment records about one finished run (see the module docstring)."""
    m = {"T_data": float(result.ledger.reward_queries), "T_comp": float(result.ledger.sample_calls),
         "status": result.status, "wall_time": float(result.wall_time)}
    # the output's draws first: their cost includes whatever the sampler spends to calibrate itself
    # (amortized over n_inference draws per prompt); the law evaluated is then that of its next draws
    cost = output_cost(result, problem, n_inference, np.random.default_rng(seed))
    m.update(evaluate_output(result, problem, seed=seed))
    m["success"] = bool(m["suboptimality"] <= eps)
    m.update(cost)
    m["T_comp_total"] = m["T_comp"] + cost["calls_per_sample"]
    m["T_data_total"] = m["T_data"] + cost["data_per_sample"]
    m["envelope"] = envelope_of(result)
    m["hints"] = hints_of(result)                      # after output_cost: the output sampler has run
    return m


# ---- the two designs' config fields ------------------------------------------------------------------

@dataclass(frozen=True)
class LadderConfig(BaseConfig):
    """Fields of a budget-ladder experiment: sizes first_rung * 2^i (i < rungs), n_inference output
    draws per rung for its per-sample cost, and a per-rung cap on sampling calls."""

    first_rung: int = 2
    rungs: int = 12
    n_inference: int = 16
    max_sample_calls: int = 20_000_000

    def __post_init__(self):
        super().__post_init__()
        check_int("first_rung", self.first_rung, low=1)
        check_int("rungs", self.rungs, low=1, high=30)
        check_int("n_inference", self.n_inference, low=1)
        check_int("max_sample_calls", self.max_sample_calls, low=1)

    def ladder_point(self) -> dict:
        return {"first_rung": self.first_rung, "rungs": self.rungs, "n_inference": self.n_inference,
                "max_sample_calls": self.max_sample_calls}


def point_ladder(point: dict, build, problem, seed: int, eps: float, **kw) -> "Ladder":
    """:func:`run_ladder` with the sizes, output draws and call cap of a LadderConfig point."""
    return run_ladder(build, problem, geometric_sizes(point["first_rung"], point["rungs"]), seed, eps=eps,
                      n_inference=point["n_inference"], budget={"max_sample_calls": point["max_sample_calls"]}, **kw)


@dataclass(frozen=True)
class CurveConfig(BaseConfig):
    """Fields of a learning-curve experiment on a linear bandit: the instance (n_prompts,
    n_responses, beta, sigma) and SpannerSampling's fixed sizes (T_span prompts with up to N_try pair
    draws each, threshold nu, T_exp exploration rounds), and n_inference output draws."""

    n_prompts: int = 4
    n_responses: int = 200
    beta: float = 0.2
    sigma: float = 0.5
    T_span: int = 200
    N_try: int = 2000
    nu: float = 0.5
    T_exp: int = 6000
    n_inference: int = 16

    def __post_init__(self):
        super().__post_init__()
        for k in ("n_prompts", "T_span", "N_try", "T_exp", "n_inference"):
            check_int(k, getattr(self, k), low=1)
        check_int("n_responses", self.n_responses, low=2)
        for k in ("beta", "nu"):
            check_real(k, getattr(self, k), low=0, low_open=True)
        check_real("sigma", self.sigma, low=0)

    def curve_point(self) -> dict:
        return {"n_prompts": self.n_prompts, "n_responses": self.n_responses, "beta": self.beta,
                "sigma": self.sigma, "T_span": self.T_span, "N_try": self.N_try, "nu": self.nu,
                "T_exp": self.T_exp, "n_inference": self.n_inference}


@dataclass(frozen=True)
class RecipeCurveConfig(CurveConfig):
    """A learning-curve experiment with a recipe check: recipe_seeds runs of the default recipe at
    recipe_eps and delta."""

    recipe_eps: float = 0.05
    delta: float = 0.1
    recipe_seeds: int = 10

    def __post_init__(self):
        super().__post_init__()
        check_real("recipe_eps", self.recipe_eps, low=0, low_open=True)
        check_real("delta", self.delta, low=0, high=1, low_open=True, high_open=True)
        check_int("recipe_seeds", self.recipe_seeds, low=0, high=10_000)


# ---- learning curves -------------------------------------------------------------------------------------

def curve_rows(n_rows: int, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices 0..n_rows-1 to evaluate: all of them if few, else a geometric grid with both ends."""
    if n_rows <= max_points:
        return np.arange(n_rows)
    idx = np.unique(np.round(np.geomspace(1, n_rows, max_points)).astype(int) - 1)
    return np.unique(np.r_[0, idx, n_rows - 1])


def spanner_learning_curve(result, problem, max_points: int = MAX_CURVE_POINTS):
    """(T_data, T_comp, subopt) arrays over the rounds of a SpannerSampling run (exact per-theta laws).

    Row 0 is the fit on the spanner data alone (the spanner-only floor). Uses
    ``SpannerSamplingPolicy.laws``, which shares the theta-independent truncation mask across all
    round fits theta_t.
    """
    pol = result.policy
    rows = [r for r in result.trace if "theta" in r]
    if not rows:
        raise ValueError("the run's trace has no theta (run SpannerSampling with trace_theta=True)")
    idx = curve_rows(len(rows), max_points)
    thetas = np.array([rows[i]["theta"] for i in idx], dtype=float)
    ex = problem.exact
    beta = problem.beta
    sub = np.zeros(len(idx))
    for x in range(ex.n_prompts):
        laws = pol.laws(x, thetas)                                          # (k, N) exact laws
        log_pi_star = ex.log_pi_star(x, beta)
        for j, probs in enumerate(laws):
            m = probs > 0
            sub[j] += ex.rho[x] * beta * float(np.sum(probs[m] * (np.log(probs[m]) - log_pi_star[m])))
    Td = np.array([rows[i]["T_data"] for i in idx], float)
    Tc = np.array([rows[i]["T_comp"] for i in idx], float)
    return Td, Tc, sub


def first_passage(costs: np.ndarray, subopt: np.ndarray, eps: float) -> float:
    """costs[i] at the first i with subopt[i] <= eps; +inf (censored) if there is none."""
    hit = np.flatnonzero(np.asarray(subopt) <= eps)
    return float(np.asarray(costs)[hit[0]]) if hit.size else math.inf


# ---- budget ladders ------------------------------------------------------------------------------------

@dataclass
class Rung:
    """One run of a ladder: its size, costs, emitted-law suboptimality and provenance."""

    size: int
    seed: int
    T_data: float
    T_comp: float
    T_data_total: float
    T_comp_total: float
    suboptimality: float
    success: bool
    status: str
    law: str
    envelope: float | None
    hints: list
    calls_per_sample: float
    token_calls_per_sample: float
    data_per_sample: float
    wall_time: float = 0.0
    extras: dict = field(default_factory=dict)


@dataclass
class Ladder:
    rungs: list
    hit: Rung | None

    @property
    def reached(self) -> bool:
        return self.hit is not None

    def at_eps(self, key: str) -> float:
        """`key` of the rung that reached eps; if none did, the largest value seen (a lower bound)."""
        if self.hit is not None:
            return float(getattr(self.hit, key))
        return float(max(getattr(r, key) for r in self.rungs))

    def metrics(self, prefix: str = "") -> dict:
        """Flat metrics of the ladder: reached, the costs at eps (or their censored bounds), provenance."""
        last = self.hit or self.rungs[-1]
        m = {"reached": float(self.reached), "rungs_run": len(self.rungs), "size_at_eps": float(last.size),
             "suboptimality": last.suboptimality, "status_at_eps": last.status,
             "hints": ";".join(sorted({h for r in self.rungs for h in r.hints})),
             "law": ";".join(sorted({r.law for r in self.rungs})),
             "envelope": last.envelope}
        for k in ("T_data", "T_comp", "T_data_total", "T_comp_total", "calls_per_sample", "token_calls_per_sample",
                  "data_per_sample"):
            m[f"{k}_to_eps"] = self.at_eps(k)
        return {f"{prefix}{k}": v for k, v in m.items()}


def run_ladder(build, problem, sizes, seed: int, *, eps: float, n_inference: int = 8, budget=None,
               valid=None, stop=None, bisect: int = 0, extras=None) -> Ladder:
    """Run ``build(size)`` at each size until a rung succeeds; see the module docstring.

    build : size -> Algorithm.
    seed : the ladder's seed; rung ``size`` runs with ``SeedSequence([seed, size])`` (a size tried
        twice gives the same run).
    valid : rung -> bool, an extra condition for success (e.g. T_data below an escape threshold).
    stop : rung -> bool, stop the ladder after this rung (e.g. its budget ran out).
    bisect : steps of bisection (geometric midpoints) between the last failing and the first
        succeeding rung.
    extras : (result, problem) -> dict of experiment-specific numbers kept on each rung.
    """
    sizes = [int(s) for s in sizes]
    rungs: list[Rung] = []

    def attempt(size: int) -> Rung:
        s = int(np.random.SeedSequence([int(seed), size]).generate_state(1)[0])
        result = build(size).run(problem, seed=s, budget=budget)
        m = measure(result, problem, eps=eps, n_inference=n_inference, seed=s + 1)
        ok = m["success"] and (valid is None or valid(m))
        r = Rung(size=size, seed=s, T_data=m["T_data"], T_comp=m["T_comp"], T_data_total=m["T_data_total"],
                 T_comp_total=m["T_comp_total"], suboptimality=m["suboptimality"], success=bool(ok),
                 status=m["status"], law=m["law"], envelope=m["envelope"], hints=m["hints"],
                 calls_per_sample=m["calls_per_sample"], token_calls_per_sample=m["token_calls_per_sample"],
                 data_per_sample=m["data_per_sample"], wall_time=m["wall_time"], extras=extras(result, problem) if extras else {})
        rungs.append(r)
        return r

    hit, prev = None, None
    for size in sizes:
        r = attempt(size)
        if r.success:
            hit = r
            break
        prev = size
        if r.status == "budget_exhausted" or (stop is not None and stop(r)):
            break
    if hit is not None and prev is not None:
        lo, hi = prev, hit.size
        for _ in range(bisect):
            mid = int(round(math.sqrt(lo * hi)))
            if not lo < mid < hi:
                break
            r = attempt(mid)
            if r.success:
                hit, hi = r, mid
            else:
                lo = mid
    return Ladder(rungs, hit)


def ladder_output(ladder: Ladder, point_metrics: dict | None = None) -> RunOutput:
    """A RunOutput whose trace is the ladder's rungs and whose status says whether it was censored."""
    metrics = {**(point_metrics or {}), **ladder.metrics()}
    return RunOutput(metrics=metrics, ledger={}, trace=[asdict(r) for r in ladder.rungs],
                     status="completed" if ladder.reached else "censored",
                     wall_time=float(sum(r.wall_time for r in ladder.rungs)))


def geometric_sizes(first: int, n: int, ratio: float = 2.0, cap: float | None = None) -> list[int]:
    """first, first*ratio, ... (n sizes, rounded, distinct), stopping at `cap`."""
    out = []
    for i in range(n):
        s = int(round(first * ratio ** i))
        if cap is not None and s > cap:
            break
        if not out or s > out[-1]:
            out.append(s)
    return out


# ---- provenance of a set of runs -------------------------------------------------------------------------

def provenance(df) -> tuple[bool, str]:
    """(any run used an oracle hint, a note naming the hints and the law evaluated) for a frame's runs."""
    hints = set()
    if "hints" in df:
        for h in df["hints"].dropna():
            hints |= {x for x in (h.split(";") if isinstance(h, str) else h) if x}
    laws = set()
    if "law" in df:
        for v in df["law"].dropna():
            laws |= {x for x in str(v).split(";") if x}
    parts = []
    if hints:
        parts.append("oracle hints: " + ", ".join(sorted(hints)))
    if "ideal" in laws:
        parts.append("evaluated on the ideal law (this evaluate() does not report the emitted law)")
    return bool(hints), "; ".join(parts)


def join_notes(*notes: str) -> str:
    return "; ".join(n for n in notes if n)


# ---- plotting helpers ------------------------------------------------------------------------------

def loglog_panel(ax, df, x: str, y: str, label: str | None = None, fit=None, color=None, marker="o",
                 censored: str | None = None, group: str | None = None):
    """Scatter of every run (censored ones as hollow triangles), geometric means per x (or per `group`,
    e.g. the sweep knob when every run has its own x), and the fitted line."""
    d = df[(df[x] > 0) & (df[y] > 0) & np.isfinite(df[x]) & np.isfinite(df[y])]
    if d.empty:
        return
    cens = d[censored].astype(bool) if censored is not None and censored in d else np.zeros(len(d), bool)
    ax.scatter(d[x][~cens], d[y][~cens], s=8, alpha=0.35, color=color, marker=marker)
    if np.any(cens):
        ax.scatter(d[x][cens], d[y][cens], s=14, alpha=0.6, facecolors="none", edgecolors=color, marker="^")
    def gmean(s):
        return float(np.exp(np.mean(np.log(s))))

    if group is None:
        g = d.groupby(x)[y].apply(gmean)
    else:
        g = d.groupby(group).agg(gx=(x, gmean), gy=(y, gmean)).sort_values("gx").set_index("gx")["gy"]
    lab = label or y
    if fit is not None:
        lab += f" (slope {fit.slope:.2f} [{fit.lo:.2f}, {fit.hi:.2f}])"
        xs = np.array([d[x].min(), d[x].max()])
        ax.plot(xs, np.exp(fit.intercept) * xs ** fit.slope, "--", color=color, lw=1)
    ax.plot(g.index, g.values, marker=marker, ms=3, lw=1, color=color, label=lab)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(x)
    ax.legend(fontsize=6, loc="best")


def save(fig, path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    import matplotlib.pyplot as plt

    plt.close(fig)
