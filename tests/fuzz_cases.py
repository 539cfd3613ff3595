"""Fuzz cases over spanex's public entry points, shared by tests/test_fuzz.py and tests/fuzz_census.py.

Each :class:`Case` pairs a hypothesis strategy of inputs with a body that calls one public entry point
(a constructor, ``run()``, ``evaluate``, ``coverage``, the CLI) and checks what comes back. The property
is the one the reliability issue asks for:

- a *clear* error: SpanexError, ValueError or TypeError (numpy's LinAlgError excluded) whose message
  names one of the arguments the input gave; or
- a *finite*, valid result: finite numbers, a run whose status is one of the three statuses and whose
  ledger respects its budget, an evaluation with finite J, a CLI exit code of 0, 1 or 2.

Anything else is *bad* (another exception, a non-finite number, a run past its time budget) or
*unclear* (an allowed exception type whose message names no argument). :func:`outcome` sorts one input
into those four kinds. Huge sizes must be refused before they are allocated, so inputs run under a cap
on the address space (:func:`memory_cap`) and a per-input alarm (:func:`time_limit`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import re
import resource
import signal
import tempfile
import time
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
from hypothesis import strategies as st

import spanex
from spanex import algorithms
from spanex.core import Budget, Ledger, Oracles, SpanexError
from spanex.core.errors import NumericalError
from spanex.evaluation import Evaluation, coverage, evaluate

STATUSES = ("completed", "budget_exhausted", "numerical_error")
#: a run may overshoot max_seconds by at most this in the fuzz checks (the documented bound is far smaller;
#: this leaves room for a loaded machine)
TIME_SLACK = 3.0


# ---- values --------------------------------------------------------------------------------------

NASTY_FLOATS = [0.0, -0.0, -1.0, 5e-324, 1e-300, 1e-12, 1e150, 1e300, 1.7e308, math.inf, -math.inf, math.nan]
NASTY_INTS = [-1, 0, 2**31, 2**62, 2**63, 2**70, 10**400]
JUNK = [None, "x", "", [1], (), {}, True, 1.9, np.float64(2.0), np.int64(3), object()]

small_ints = st.integers(0, 6)
ints = st.one_of(small_ints, st.sampled_from(NASTY_INTS), st.sampled_from(JUNK))
pos_floats = st.sampled_from([0.01, 0.1, 0.5, 1.0, 2.0, 10.0])
floats = st.one_of(pos_floats, st.sampled_from(NASTY_FLOATS), st.floats(), st.sampled_from(JUNK),
                   st.sampled_from([3, 10**400]))
bools = st.one_of(st.booleans(), st.sampled_from([0, 1, "yes", None]))

#: the choices of string parameters (unknown names get the default and junk)
CHOICES = {
    "truncation": ["reward", "policy"], "output": ["final", "mixture"], "regression": ["auto", "squared", "logistic"],
    "fallback": ["last", "ref", "none", "raise"], "feedback": ["auto", "reward", "preference", "both"],
    "strong_oracle": ["weak", "exact"], "solver": ["exact", "sgd"], "roll_in": ["policy", "ref"],
    "targets": ["sample", "logprob"], "sampler_mode": ["rejection", "logprob"], "regularizer": ["chi2_kl", "chi2"],
    "mode": ["auto", "envelope", "paper", "logprob"], "noise": ["none", "gaussian", "uniform", "bernoulli"],
    "ref": ["dirichlet", "uniform"], "envelope": ["auto", "vocab", "calibrated"],
}


def value_strategy(name: str, default, annotation: str = ""):
    """A strategy of values for a parameter, from its name, default and annotation."""
    ann = str(annotation)
    if name in CHOICES:
        return st.one_of(st.sampled_from(CHOICES[name]), st.sampled_from(["junk", "", 3, None]))
    if name == "M":
        return st.one_of(st.just(None), st.sampled_from(["doubling", "worst_case", "auto"]), floats)
    if isinstance(default, bool) or ann == "bool":
        return bools
    if isinstance(default, int) or "int" in ann:
        return ints
    if isinstance(default, float) or "float" in ann:
        return floats
    return st.one_of(st.just(default), st.sampled_from(JUNK))


def kwargs_strategy(params: dict, max_size: int = 3):
    """Dicts overriding up to `max_size` of `params` (name -> strategy)."""
    names = sorted(params)
    return st.lists(st.sampled_from(names), max_size=max_size, unique=True).flatmap(
        lambda keys: st.fixed_dictionaries({k: params[k] for k in keys}))


def dataclass_params(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        out[f.name] = value_strategy(f.name, default, f.type)
    return out


def signature_params(fn, skip=()) -> dict:
    import inspect

    out = {}
    for name, p in inspect.signature(fn).parameters.items():
        if name in skip or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        out[name] = value_strategy(name, default, p.annotation)
    return out


# ---- outcomes ------------------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str            # 'clear', 'finite', 'bad', 'unclear'
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.kind in ("clear", "finite")


class Bad(Exception):
    """A result that is not finite or not valid (raised by the checks)."""


class Timeout(BaseException):
    """An input ran past the per-input time limit (a BaseException, so no `except Exception` eats it)."""


def _names_an_argument(msg: str, names) -> bool:
    for n in names:
        n = str(n).lstrip("-")
        if n and re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", msg):
            return True
    return False


def outcome(body, names, time_limit_s: float | None = None) -> Outcome:
    """Run ``body()`` and sort what happens; ``names`` are the arguments the input gave."""
    t0 = time.perf_counter()
    try:
        with time_limit(time_limit_s):
            body()
    except Timeout:
        return Outcome("bad", f"Timeout: over {time_limit_s} s")
    except Bad as e:
        return Outcome("bad", f"Bad: {e}")
    except np.linalg.LinAlgError as e:
        return Outcome("bad", f"LinAlgError: {e}")
    except (SpanexError, ValueError, TypeError) as e:
        msg = str(e)
        if _names_an_argument(msg, names):
            return Outcome("clear", f"{type(e).__name__}: {msg[:200]}")
        return Outcome("unclear", f"{type(e).__name__}: {msg[:200]}")
    except Exception as e:
        return Outcome("bad", f"{type(e).__name__}: {str(e)[:200]}")
    if time_limit_s is not None and time.perf_counter() - t0 > time_limit_s:
        return Outcome("bad", "slow")
    return Outcome("finite")


@contextlib.contextmanager
def time_limit(seconds):
    """SIGALRM after `seconds` raises Timeout (main thread only; no limit when None)."""
    if seconds is None or not hasattr(signal, "SIGALRM"):
        yield
        return

    def handler(signum, frame):
        raise Timeout()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextlib.contextmanager
def memory_cap(extra_bytes: int = 3 << 30):
    """Cap the address space at its current size plus `extra_bytes` (soft limit, restored on exit), so an
    input that allocates without bound fails with MemoryError instead of exhausting the machine."""
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# ---- checks of results ---------------------------------------------------------------------------

def finite(name: str, v) -> None:
    a = np.asarray(v, dtype=float)
    if not np.all(np.isfinite(a)):
        raise Bad(f"{name} is not finite: {v!r}"[:300])


def check_problem(problem) -> None:
    if not isinstance(problem, spanex.Problem):
        raise Bad(f"not a Problem: {type(problem).__name__}")
    for k in ("beta", "B", "feature_norm_bound", "R_max"):
        v = getattr(problem, k)
        finite(k, v)
        if not v > 0:
            raise Bad(f"{k} = {v!r} is not > 0")


def check_exact(problem) -> None:
    ex = problem.exact
    if ex is None or not hasattr(ex, "C_cov"):
        return
    c = coverage(problem)
    finite("C_cov", c)
    if c < 1 - 1e-9:
        raise Bad(f"C_cov = {c} < 1")
    finite("J_star", ex.J_star(problem.beta))


def check_oracles(problem, rng) -> None:
    o = Oracles(problem, Ledger(), "eval")
    for x in o.prompts(2, rng):
        ys = o.sample_ref(x, 3, rng)
        F = o.phi(x, ys)
        if F.shape != (3, problem.d):
            raise Bad(f"phi has shape {F.shape}, expected (3, {problem.d})")
        finite("phi", F)
        if problem.reward is not None:
            finite("reward", o.reward(x, ys, rng))
        if problem.preference is not None:
            b = o.preference(x, ys, ys, rng)
            if not np.all((b == 0) | (b == 1)):
                raise Bad(f"preferences not in {{0, 1}}: {b}")


def _walk_numbers(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_numbers(v, f"{path}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk_numbers(v, f"{path}[{i}]")
    elif isinstance(obj, np.ndarray) and obj.dtype.kind == "f":
        yield path, obj
    elif isinstance(obj, (float, np.floating)):
        yield path, obj


def check_result(res, problem, budget: Budget, evaluate_policy: bool = True) -> None:
    if not isinstance(res, spanex.Result):
        raise Bad(f"run returned {type(res).__name__}")
    if res.status not in STATUSES:
        raise Bad(f"status {res.status!r}")
    b, led = budget, res.ledger
    if b.max_sample_calls is not None and led.sample_calls > b.max_sample_calls:
        raise Bad(f"T_comp {led.sample_calls} > budget {b.max_sample_calls}")
    if b.max_reward_queries is not None and led.reward_queries > b.max_reward_queries:
        raise Bad(f"T_data {led.reward_queries} > budget {b.max_reward_queries}")
    if b.max_seconds is not None and res.wall_time > b.max_seconds + TIME_SLACK:
        raise Bad(f"wall time {res.wall_time:.2f} s past max_seconds {b.max_seconds}")
    if res.status == "numerical_error":
        if not res.extras.get("error"):
            raise Bad("status 'numerical_error' without a message")
    else:
        for path, v in _walk_numbers({"trace": res.trace, "extras": res.extras}):
            if np.any(np.isnan(np.asarray(v, dtype=float))):
                raise Bad(f"{path} is NaN in a {res.status!r} run")
            if "theta" in path and not np.all(np.isfinite(np.asarray(v, dtype=float))):
                raise Bad(f"{path} is not finite in a {res.status!r} run")
    for attr in ("theta", "thetas"):
        if hasattr(res.policy, attr):
            finite(f"policy.{attr}", getattr(res.policy, attr))
    if evaluate_policy:
        check_evaluation(evaluate(res.policy, problem, n_mc=20, seed=0), problem.beta)


def check_evaluation(ev, beta: float = 1.0) -> None:
    if not isinstance(ev, Evaluation):
        raise Bad(f"evaluate returned {type(ev).__name__}")
    for k in ("J", "J_star", "suboptimality", "kl_ref", "mean_reward"):
        v = getattr(ev, k)
        if v is not None:
            finite(f"evaluation.{k}", v)
    # suboptimality = beta KL(pi || pi*): a KL of two float64 laws is exact to ~1e-14, so allow that times beta
    if ev.suboptimality is not None and ev.suboptimality < -1e-6 * max(1.0, abs(ev.J_star)) - 1e-14 * beta:
        raise Bad(f"suboptimality {ev.suboptimality} < 0")
    if ev.kl_ref is not None and ev.kl_ref < -1e-9:
        raise Bad(f"KL {ev.kl_ref} < 0")


# ---- tiny problems (built once) ------------------------------------------------------------------

_PROBLEMS: dict = {}


def tiny(name: str):
    if name not in _PROBLEMS:
        from spanex.instances import linear_bandit
        from spanex.tokens import token_chain

        if name == "linear":
            _PROBLEMS[name] = linear_bandit(n_prompts=2, n_responses=8, d=3, beta=0.5, seed=0)
        elif name == "preference":
            _PROBLEMS[name] = tiny("linear").with_feedback("preference")
        elif name == "tokens":
            _PROBLEMS[name] = token_chain(H=3, beta=0.5)
        else:
            raise KeyError(name)
    return _PROBLEMS[name]


budgets = st.builds(Budget, max_sample_calls=st.integers(0, 3000), max_reward_queries=st.integers(0, 200),
                    max_seconds=st.sampled_from([0.25, 1.0]))


# ---- the cases -----------------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    strategy: object
    run: object          # input -> Outcome
    time_limit: float = 20.0


def _algorithm_case(alg_name: str) -> Case:
    cls = algorithms.get(alg_name)
    params = dataclass_params(cls)
    problems = ["tokens"] if alg_name == "mtss" else ["linear", "preference", "tokens"]
    strat = st.tuples(kwargs_strategy(params), st.sampled_from(problems), budgets, st.integers(0, 3))

    def run(inp, limit=None):
        kwargs, pname, budget, seed = inp

        def body():
            alg = cls(**kwargs)
            problem = tiny(pname)
            res = alg.run(problem, seed=seed, budget=budget)
            check_result(res, problem, budget)

        return outcome(body, list(kwargs) + ["budget", "seed", "problem"], limit)

    return Case(f"algorithm:{alg_name}", strat, run)


def _instance_case(inst_name: str) -> Case:
    from spanex import instances
    from spanex.algorithms.spanner_sampling import SpannerSampling

    fn = instances.get(inst_name)
    params = signature_params(fn)
    strat = kwargs_strategy(params, max_size=3)

    def run(kwargs, limit=None):
        def body():
            problem = fn(**kwargs)
            check_problem(problem)
            check_exact(problem)
            rng = np.random.default_rng(0)
            check_oracles(problem, rng)
            budget = Budget(max_sample_calls=300, max_reward_queries=40, max_seconds=0.5)
            res = SpannerSampling(T_span=2, T_exp=2, N_try=4).run(problem, seed=0, budget=budget)
            check_result(res, problem, budget)

        return outcome(body, list(kwargs), limit)

    return Case(f"instance:{inst_name}", strat, run)


def _tabular_inputs():
    """Valid arrays and arguments of tabular_problem, then one or two of them replaced by nasty values."""
    nasty_arrays = st.one_of(st.sampled_from(NASTY_FLOATS), st.sampled_from(JUNK),
                             st.lists(st.sampled_from(NASTY_FLOATS), min_size=1, max_size=3))

    @st.composite
    def build(draw):
        K = draw(st.integers(1, 2))
        d = draw(st.integers(1, 3))
        Ns = [draw(st.integers(1, 4)) for _ in range(K)]
        scale = draw(st.sampled_from([1.0, 1.0, 1e-3, 1e3, 1e100, 1e150, 1e300]))
        rng = np.random.default_rng(draw(st.integers(0, 3)))
        args = {"rho": [1.0 / K] * K,
                "ref_probs": [list(rng.dirichlet(np.ones(N))) for N in Ns],
                "features": [(scale * rng.standard_normal((N, d))).tolist() for N in Ns]}
        kwargs = {"beta": draw(st.one_of(pos_floats, st.sampled_from(NASTY_FLOATS))), "B": 1.0}
        if draw(st.booleans()):
            kwargs["theta_star"] = rng.standard_normal(d).tolist()
        else:
            kwargs["rewards"] = [rng.standard_normal(N).tolist() for N in Ns]
        extra = {k: value_strategy(k, None, "float") for k in ("sigma", "B", "feature_norm_bound", "R_max",
                                                                  "bt_temperature", "low", "high")}
        extra["noise"] = value_strategy("noise", "gaussian")
        extra["feedback"] = value_strategy("feedback", "both")
        kwargs.update(draw(kwargs_strategy(extra, max_size=2)))
        for key in draw(st.lists(st.sampled_from(["rho", "ref_probs", "features", "theta_star", "rewards"]),
                                 max_size=1)):
            target = args if key in args else kwargs
            target[key] = draw(nasty_arrays)
        return args, kwargs, draw(st.sampled_from(["online_dpo", "spanner_sampling", "best_of_n"]))

    return build()


def _tabular_case() -> Case:
    strat = _tabular_inputs()

    def run(inp, limit=None):
        args, kwargs, alg_name = inp

        def body():
            problem = spanex.tabular_problem(args["rho"], args["ref_probs"], args["features"], **kwargs)
            check_problem(problem)
            check_exact(problem)
            check_oracles(problem, np.random.default_rng(0))
            small = {"online_dpo": dict(T=3), "spanner_sampling": dict(T_span=2, T_exp=2, N_try=4),
                     "best_of_n": dict(n=3)}[alg_name]
            budget = Budget(max_sample_calls=300, max_reward_queries=40, max_seconds=0.5)
            res = algorithms.make(alg_name, **small).run(problem, seed=0, budget=budget)
            check_result(res, problem, budget)

        return outcome(body, list(args) + list(kwargs), limit)

    return Case("tabular_problem", strat, run)


def _sampler_case() -> Case:
    from spanex.sampling import SoftmaxSampler
    from spanex.sampling.strong import WeakStrongSampler
    from spanex.sampling.token_sampler import TokenSoftmaxSampler

    classes = {"SoftmaxSampler": SoftmaxSampler, "WeakStrongSampler": WeakStrongSampler,
               "TokenSoftmaxSampler": TokenSoftmaxSampler}
    params = {k: dataclass_params(c) for k, c in classes.items()}
    strat = st.sampled_from(sorted(classes)).flatmap(
        lambda k: st.tuples(st.just(k), kwargs_strategy(params[k], max_size=4),
                            st.sampled_from([[0.0, 0.0, 0.0], [1.0, -1.0, 0.5], [1e3, 0, 0], [1e300, 0, 0]])))

    def run(inp, limit=None):
        kind, kwargs, theta = inp

        def body():
            kw = dict(kwargs)
            if kind != "WeakStrongSampler":
                kw.setdefault("beta", 0.5)
            s = classes[kind](**kw)
            if kind != "WeakStrongSampler" and getattr(s, "M", None) is not None:
                finite("N", s.N)
                finite("max_calls_per_draw", s.max_calls_per_draw)
            problem = tiny("tokens" if kind == "TokenSoftmaxSampler" else "linear")
            rng = np.random.default_rng(0)
            led = Ledger(Budget(max_sample_calls=2000, max_seconds=1.0))
            o = Oracles(problem, led, "train")
            th = np.asarray(theta, dtype=float)
            try:
                if kind == "SoftmaxSampler":
                    ys, diag = s.sample(lambda ys: o.phi(0, ys) @ th, 0, o, rng, n=2)
                elif kind == "WeakStrongSampler":
                    ys = s(o, 0, th, 2, rng)
                else:
                    ys, diag = s.sample(lambda i, toks: o.token_phi(0, [(int(t),) for t in toks]) @ th[:2], 0,
                                        [(), ()], o, rng)
            except spanex.BudgetExhausted:
                return
            if len(ys) != 2:
                raise Bad(f"{len(ys)} draws, expected 2")

        return outcome(body, list(kwargs) + ["beta", "theta", "M", "max_M"], limit)

    return Case("samplers", strat, run)


def _budget_case() -> Case:
    params = {k: value_strategy(k, None, "int") for k in ("max_reward_queries", "max_sample_calls")}
    params["max_seconds"] = floats
    strat = st.tuples(kwargs_strategy(params, max_size=3), st.lists(st.tuples(
        st.sampled_from(["weak", "reward", "strong", "phi", "bogus"]), ints), max_size=4))

    def run(inp, limit=None):
        kwargs, charges = inp

        def body():
            b = Budget(**kwargs)
            if Budget.coerce(dict(kwargs)) != b:
                raise Bad("Budget.coerce(dict) differs from Budget(**dict)")
            led = Ledger(b)
            for kind, n in charges:
                try:
                    led.charge(kind, n)
                except spanex.BudgetExhausted:
                    pass
            if b.max_sample_calls is not None and led.sample_calls > b.max_sample_calls:
                raise Bad("sample calls past the budget")

        return outcome(body, list(kwargs) + ["kind", "n", "label"], limit)

    return Case("Budget", strat, run)


_POLICIES: dict = {}


def _policy(alg_name: str):
    if alg_name not in _POLICIES:
        small = {"spanner_sampling": dict(T_span=2, T_exp=2, N_try=4), "online_dpo": dict(T=2),
                 "best_of_n": dict(n=3), "inference_time_pessimism": dict(n=3), "mtss": dict(n_rounds=1, rollouts=2)}
        problem = tiny("tokens" if alg_name == "mtss" else "linear")
        _POLICIES[alg_name] = (algorithms.make(alg_name, **small[alg_name]).run(problem, seed=0).policy, problem)
    return _POLICIES[alg_name]


def _evaluate_case() -> Case:
    """evaluate(policy, problem, n_mc=, seed=), coverage(problem) and policy.probs(x), one argument fuzzed."""
    seeds = st.one_of(st.sampled_from(NASTY_INTS), st.sampled_from(JUNK), st.just(np.random.default_rng(1)),
                      st.just(np.random.SeedSequence(3)))
    fuzzed = st.one_of(st.tuples(st.just("policy"), st.sampled_from(JUNK)),
                       st.tuples(st.just("problem"), st.sampled_from(JUNK)),
                       st.tuples(st.just("n_mc"), ints), st.tuples(st.just("seed"), seeds),
                       st.tuples(st.just("x"), st.one_of(ints, st.sampled_from([1.9, -1, 2, np.int64(1), np.uint8(0)]))),
                       st.just(("none", None)))
    strat = st.tuples(st.sampled_from(["spanner_sampling", "online_dpo", "best_of_n", "inference_time_pessimism",
                                       "mtss"]), fuzzed)

    def run(inp, limit=None):
        alg_name, (which, value) = inp

        def body():
            policy, problem = _policy(alg_name)
            args = dict(policy=policy, problem=problem, n_mc=20, seed=0, x=0)
            if which != "none":
                args[which] = value
            check_evaluation(evaluate(args["policy"], args["problem"], n_mc=args["n_mc"], seed=args["seed"]))
            finite("coverage", coverage(args["problem"]))
            if policy.has_probs:                                    # the exact law at a prompt index
                law = policy.probs(args["x"])
                finite("probs", law)
                if abs(float(np.sum(law)) - 1) > 1e-6:
                    raise Bad(f"probs sum to {np.sum(law)}")

        return outcome(body, [which], limit)

    return Case("evaluate", strat, run)


# ---- the command line -----------------------------------------------------------------------------

_TMP = None


def _tmp() -> str:
    """A scratch directory with the files the CLI fuzz points at (made once per process)."""
    global _TMP
    if _TMP is None:
        _TMP = tempfile.mkdtemp(prefix="spanex-fuzz-")
        os.makedirs(os.path.join(_TMP, "empty"))
        with open(os.path.join(_TMP, "file.txt"), "w") as f:
            f.write("not a directory\n")
        for name, text in {"ok.toml": "[spanner-scaling]\nn_seeds = 1\n", "bad.toml": "[[[\n",
                           "deep.toml": "a = " + "[" * 40 + "]" * 40 + "\n", "junk.toml": "x = 1979-05-27\n",
                           "unknown.toml": "[nope]\nk = 1\n"}.items():
            with open(os.path.join(_TMP, name), "w") as f:
                f.write(text)
    return _TMP


def _paths():
    return st.sampled_from(["empty", "missing", "file.txt", "missing/deeper", "out", "ok.toml", "bad.toml",
                            "deep.toml", "junk.toml", "unknown.toml", "x.csv", "missing/x.csv"]).map(
        lambda p: os.path.join(_tmp(), p))


_VALUES = ["1", "0", "-1", "2", "0.5", "1e-300", "1e300", "1e400", "nan", "inf", "x", "", "[1]", "[[1]]", '"s"',
           "true", "1,2", "10000000000", "99999999999999999999999"]
_INSTANCE_KEYS = ["N", "c", "beta", "d", "seed", "n_responses", "n_prompts", "H", "n", "k", "theta_norm", "nope",
                  "sigma", "noise", "feedback"]
_ALG_KEYS = ["spanner_sampling.T_exp", "spanner_sampling.lam", "online_dpo.T", "xpo.alpha", "best_of_n.n",
             "nope.k", "xpo.nope", "spanner-scaling.n_seeds", "n_seeds", "eps_values"]


def _sets():
    return st.builds(lambda k, v: f"{k}={v}", st.sampled_from(_INSTANCE_KEYS + _ALG_KEYS), st.sampled_from(_VALUES))


def _flag(name, values):
    return st.tuples(st.just(name), values).map(list)


def _argv():
    val = st.sampled_from(_VALUES)
    compare = st.lists(st.one_of(
        _flag("--instance", st.sampled_from(["needle", "linear_bandit", "max_k_dnf", "token_chain", "token_linear",
                                              "nope", ""])),
        _flag("--set", _sets()), _flag("--param", _sets()),
        _flag("--algorithms", st.sampled_from(["best_of_n", "online_dpo,xpo", "spanner_sampling", "nope", ",", "",
                                                "mtss", "exhaustive_design,best_of_n"])),
        _flag("--seeds", st.sampled_from(["1", "0,1", "0", "-1", "x", "10001", "1,,2", "2"])),
        _flag("--max-reward-queries", val), _flag("--max-sample-calls", val), _flag("--max-seconds", val),
        _flag("--strong-oracle", st.sampled_from(["exact", "weak", "bad"])),
        _flag("--feedback", st.sampled_from(["reward", "preference", "both"])),
        _flag("--n-inference", val), _flag("--n-mc", val), _flag("--csv", _paths()),
        st.sampled_from([["--oracle-hints"], ["--summary"], ["--bogus"], ["-h"]])), max_size=6)
    run = st.lists(st.one_of(
        _flag("--out", _paths()), _flag("--set", _sets()), _flag("--config", _paths()),
        _flag("--executor", st.sampled_from(["local", "serial", "ray", "bad"])), _flag("--workers", val),
        st.sampled_from([["--quick"], ["--report"], ["--no-progress"], ["--bogus"]])), max_size=5)
    run_head = st.sampled_from(["spanner-scaling", "token-level", "all", "nope", "os:path", "this:s",
                                "collections:OrderedDict", "spanex.experiments.spanner_scaling:Nope", ""])
    report = st.lists(st.one_of(_flag("--json", _paths()), _flag("--experiment", run_head),
                                st.sampled_from([["--no-export"], ["--bogus"]])), max_size=3)
    demo = st.lists(st.one_of(_flag("--seed", val), _flag("--seeds", val), _flag("--eps", val),
                              _flag("--beta", val)), max_size=4)
    flat = lambda parts: [t for p in parts for t in p]  # noqa: E731
    return st.one_of(
        st.tuples(st.just(["compare"]), compare).map(lambda t: t[0] + flat(t[1])),
        st.tuples(st.just(["run"]), run_head, run).map(lambda t: t[0] + [t[1]] + flat(t[2])),
        st.tuples(st.just(["report"]), _paths(), report).map(lambda t: t[0] + [t[1]] + flat(t[2])),
        st.tuples(st.just(["demo"]), demo).map(lambda t: t[0] + flat(t[1])),
        st.sampled_from([[], ["list"], ["list", "-v"], ["nope"], ["--version"], ["-h"]]),
    )


@contextlib.contextmanager
def _cheap_commands():
    """The CLI's work made small, its argument handling left alone: `spanex compare` runs the first two
    algorithms on one seed under a small budget, `spanex run` validates everything and then stops before the
    sweep, `spanex demo` runs under a small budget."""
    import spanex.comparison.cli as ccli
    import spanex.experiments.runner as runner
    from spanex.algorithms.spanner_sampling import SpannerSampling
    from spanex.core.algorithm import Algorithm

    real_compare, real_runner, real_run = ccli.compare, runner.run_experiment, SpannerSampling.run

    def small_compare(problem, algs, budget, seeds, **kw):
        kw.update(n_inference=min(kw.get("n_inference", 20), 2), n_mc=min(kw.get("n_mc", 2000), 10), progress=False)
        algs = dict(list(algs.items())[:2])
        return real_compare(problem, algs, Budget(max_sample_calls=300, max_reward_queries=40, max_seconds=0.3),
                            list(seeds)[:1], **kw)

    def stub_run_experiment(spec, out, **kw):
        return SimpleNamespace(notes=[], line=lambda: f"{spec}: stub", failed=0, experiment=str(spec))

    def small_run(self, problem, seed, budget=None, **kw):
        return Algorithm.run(self, problem, seed, Budget(max_sample_calls=300, max_seconds=0.3), **kw)

    ccli.compare, runner.run_experiment = small_compare, stub_run_experiment
    SpannerSampling.run = small_run
    try:
        yield
    finally:
        ccli.compare, runner.run_experiment, SpannerSampling.run = real_compare, real_runner, real_run


def _cli_case() -> Case:
    from spanex.cli import main

    def run(argv, limit=None):
        err = io.StringIO()

        def body():
            with _cheap_commands(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                try:
                    code = main(list(argv))
                except SystemExit as e:       # argparse: usage errors exit 2, --help exits 0
                    code = e.code if isinstance(e.code, int) else 2
            text = err.getvalue()
            if code not in (0, 1, 2):
                raise Bad(f"exit code {code}")
            if "Traceback" in text:
                raise Bad(f"a traceback on stderr: {text[-300:]}")
            if code == 2:
                raise _UserError(text.strip().splitlines()[-1] if text.strip() else "")

        out = outcome(body, [], limit)
        if out.kind == "unclear" and out.detail.startswith("_UserError"):
            return Outcome("clear", out.detail)
        if out.kind in ("clear", "unclear"):       # an exception escaped main: a traceback for the user
            return Outcome("bad", out.detail)
        return out

    return Case("cli", _argv(), run)


class _UserError(ValueError):
    """Exit code 2 (a user error, reported in one line)."""


def warm_caches() -> None:
    """Build the tiny problems and the evaluated policies now (e.g. before forking)."""
    for name in ("linear", "preference", "tokens"):
        tiny(name)
    for alg in ("spanner_sampling", "online_dpo", "best_of_n", "inference_time_pessimism", "mtss"):
        _policy(alg)


def all_cases() -> list[Case]:
    cases = [_algorithm_case(n) for n in sorted(algorithms.REGISTRY)]
    from spanex import instances

    cases += [_instance_case(n) for n in sorted(instances.REGISTRY)]
    cases += [_tabular_case(), _sampler_case(), _budget_case(), _evaluate_case(), _cli_case()]
    return cases
