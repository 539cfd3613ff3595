"""Monte Carlo evaluation of a policy on a real-LM problem (no exact law is available).

Every oracle call made here is charged under the ``'eval'`` label of the policy's ledger, never
to the algorithm's T_data / T_comp: the policy's own samples (whatever they cost it: rejection
proposals, Best-of-N candidates and their reward queries), the pi_ref reference samples, the
features and the reward evaluations.

Estimators
----------
(``'exact'``: the reference policy itself has KL 0 and draws no reference samples.)

Mean real reward: the plain average of r_real(x, y) over ``n_prompts`` prompts x ~ rho (drawn
with the evaluation seed; or the given ``prompts``, each once) and ``n_per_prompt`` samples
y ~ pi(.|x) each; unbiased, with a standard error over prompts.

Cost per generated sample: the pi_ref draws (``draws_per_sample``) and reward queries
(``reward_queries_per_sample``) the policy itself used to produce its samples (rejection
proposals, Best-of-N candidates), separately from the evaluation's own reward labels and
reference draws. The oracles draw pi_ref in batches (a per-prompt pool, every draw charged when
drawn); draws still waiting in the pool are not counted as used (they serve later calls, e.g. the
reference sample).

KL(pi || pi_ref): we never know log pi(y|x) for an improper policy, so we use the
Donsker–Varadhan bound with a linear test function g(y) = <w, phi(x, y)>:

    KL(pi(.|x) || pi_ref(.|x)) >= E_pi[g] - log E_{pi_ref}[exp g],

equality iff pi ∝ pi_ref exp(g). Expectations are replaced by means over the policy samples and
over ``n_ref`` fresh pi_ref samples per prompt.

- ``'plugin'`` (policies with a ``theta`` and ``beta``, e.g. SpannerSampling's output): w = theta/beta,
  the tilt the policy implements. Exact when pi = pi_theta; the rejection-sampling policy differs
  from pi_theta only through truncation and clipping. Finite-sample bias: log of a sample mean
  underestimates log E exp g (Jensen), by about Var_ref(e^g)/(2 n_ref (E e^g)^2), so the estimate
  is biased *upward* by that amount.
- ``'fitted'`` (any policy): w maximises the bound on one half of the samples and the bound is
  evaluated on the other half (two-fold cross-fitting, averaged), so the fit does not inflate it.
  Samples are assigned to the halves alternately, with the alternation shifted by one from prompt
  to prompt, so prompts with a single policy sample still land in both halves. The same estimator
  applies to every policy, so its values are comparable across policies (pi_ref included, where
  it should read about 0).
  It estimates the KL between pi_ref and the I-projection of pi onto the tilts of phi, a *lower
  bound* on KL(pi || pi_ref) (up to the same Jensen term); for Best-of-N, whose KL is also bounded
  above by log n - (n - 1)/n, both are reported.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp

from ..core.errors import as_generator, check_choice, check_int, check_real
from ..core.oracles import Oracles
from ..core.policy import Policy, ReferencePolicy

KL_METHODS = ("auto", "exact", "plugin", "fitted", "none")


@dataclass
class LMEvaluation:
    """Result of :func:`lm_evaluate` (see the module docstring for the estimators)."""

    mean_reward: float
    reward_se: float
    kl: float | None
    kl_method: str
    kl_upper: float | None
    target_reward: float | None
    n_prompts: int
    n_samples: int
    n_ref_draws: int = 0
    draws_per_sample: float = 0.0
    reward_queries_per_sample: float = 0.0
    per_prompt: list = field(default_factory=list)
    examples: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _relabel(policy: Policy, oracles) -> Policy:
    p = copy.copy(policy)
    p.oracles = oracles
    return p


def lm_evaluate(policy: Policy, problem, *, n_prompts: int = 16, n_per_prompt: int = 4, n_ref: int = 32,
                kl: str = "auto", ridge: float = 1.0, seed=0, n_examples: int = 3, prompts=None, ref=None,
                progress=None) -> LMEvaluation:
    """Mean real reward and an estimate of E_x KL(pi(.|x) || pi_ref(.|x)), all charged as 'eval'.

    Parameters
    ----------
    policy : a policy bound to oracles (e.g. ``result.policy``).
    problem : the (LM) problem; its ``real_reward`` is used when present, else the reward oracle's mean.
    n_prompts, n_per_prompt : prompts drawn from rho, samples per prompt.
    n_ref : pi_ref samples per prompt for the KL estimate (0 with kl='none').
    kl : 'auto' ('exact' = 0 for pi_ref itself, 'plugin' when the policy has theta and beta, else
        'fitted'), 'exact', 'plugin', 'fitted', 'none'.
    ridge : L2 penalty on w in the fitted estimator (>= 0). With few samples per prompt the
        cross-fitted bound can come out negative (the fitted w does not transfer); a larger ridge
        shrinks it towards 0, a valid but loose bound.
    seed : evaluation seed (int or Generator).
    prompts : evaluate on these prompts (each once) instead of n_prompts draws from rho.
    ref : {prompt: (m, d) phi of pi_ref draws} to use as the KL reference sample instead of fresh
        draws (share one reference sample across policies so their KL estimates are comparable).
    progress : an optional callable ``progress(k)`` called after each prompt (e.g. tqdm's update).
    """
    n_per_prompt = check_int("n_per_prompt", n_per_prompt, low=1)
    check_choice("kl", kl, KL_METHODS)
    ridge = check_real("ridge", ridge, low=0)
    if ref is None:
        n_ref = check_int("n_ref", n_ref, low=0 if kl == "none" else 2)
    if policy.oracles is None:
        raise ValueError("policy is not bound to oracles; evaluate the policy of a Result or bind it first")
    rng = as_generator(seed)
    # fresh 'eval' pools: an evaluation never reuses draws left over by an earlier one (reproducible by seed)
    oracles = Oracles(policy.oracles.problem, policy.oracles.ledger, "eval")
    sampler = _relabel(policy, oracles)
    ledger = oracles.ledger
    has_tilt = hasattr(policy, "theta") and hasattr(policy, "beta")
    is_ref = type(policy) is ReferencePolicy
    method = kl
    if kl == "auto":
        method = "exact" if is_ref else "plugin" if has_tilt else "fitted"
    if method == "exact" and not is_ref:
        raise ValueError("kl='exact' is only available for the reference policy itself (KL = 0)")
    if method == "plugin" and not has_tilt:
        raise ValueError(f"kl='plugin' needs a policy with theta and beta; {type(policy).__name__} has none")
    real = getattr(problem, "real_reward", None)
    target = problem.reward.mean if getattr(problem.reward, "mean", None) is not None else None
    xs = list(prompts) if prompts is not None else oracles.prompts(check_int("n_prompts", n_prompts, low=1), rng)
    if not xs:
        raise ValueError("prompts must be a non-empty list")
    rewards, target_rewards, examples = [], [], []
    phi_pi, phi_ref = [], []
    policy_draws = policy_rq = 0
    for x in xs:
        w0, q0, p0 = ledger.count("weak", "eval"), ledger.count("reward", "eval"), oracles.pooled(x)
        ys = sampler.sample(x, n_per_prompt, rng)
        # draws the policy used: charged ones minus those the pool still holds (drawn in a batch, unused)
        policy_draws += ledger.count("weak", "eval") - w0 - (oracles.pooled(x) - p0)
        policy_rq += ledger.count("reward", "eval") - q0
        if real is not None:
            ledger.charge("reward", len(ys), "eval")
            r = np.asarray(real(x, ys), float)
        else:
            r = oracles.reward(x, ys, rng)
        rewards.append(r)
        if target is not None and target is not real:
            target_rewards.append(np.asarray(target(x, ys), float))
        if len(examples) < n_examples:
            examples.append({"prompt": str(x), "response": str(ys[0]), "reward": float(r[0])})
        if method not in ("none", "exact"):
            phi_pi.append(oracles.phi(x, ys))
            phi_ref.append(ref[x] if ref is not None else oracles.phi(x, oracles.sample_ref(x, n_ref, rng)))
        if progress is not None:
            progress(1)
    R = np.array(rewards)  # (prompts, per prompt)
    per_prompt = R.mean(axis=1)
    m = len(xs)
    se = float(per_prompt.std(ddof=1) / np.sqrt(m)) if m > 1 else float("nan")
    kl_val = 0.0 if method == "exact" else None
    if method == "plugin":
        w = np.asarray(policy.theta, float) / float(policy.beta)
        kl_val = float(np.mean([_dv(w, a, b) for a, b in zip(phi_pi, phi_ref)]))
    elif method == "fitted":
        kl_val = _fitted_dv(phi_pi, phi_ref, ridge)
    n_bon = getattr(policy, "n", None)
    kl_upper = float(np.log(n_bon) - (n_bon - 1) / n_bon) if type(policy).__name__ == "BestOfNPolicy" else None
    tr = float(np.mean(np.concatenate(target_rewards))) if target_rewards else None
    return LMEvaluation(mean_reward=float(R.mean()), reward_se=se, kl=kl_val, kl_method=method, kl_upper=kl_upper,
                        target_reward=tr, n_prompts=m, n_samples=int(R.size),
                        n_ref_draws=0 if ref is not None else int(sum(len(b) for b in phi_ref)),
                        draws_per_sample=policy_draws / R.size, reward_queries_per_sample=policy_rq / R.size,
                        per_prompt=per_prompt.tolist(), examples=examples)


def _dv(w, Phi_pi, Phi_ref) -> float:
    """E_pi[<w,phi>] - log mean_ref exp(<w,phi>) from samples."""
    return float(np.mean(Phi_pi @ w) - (logsumexp(Phi_ref @ w) - np.log(len(Phi_ref))))


def _fitted_dv(phi_pi, phi_ref, ridge) -> float:
    """Two-fold cross-fitted DV bound with per-prompt linear test functions sharing one w.

    Prompt j's samples go to fold (i + j) mod 2: a prompt with one policy sample still lands in a fold.
    """
    d = phi_pi[0].shape[1]
    folds = []

    def half(a, j, part):
        return a[(part + j) % 2::2]

    for part in (0, 1):
        tr = [(half(a, j, part), half(b, j, part)) for j, (a, b) in enumerate(zip(phi_pi, phi_ref))]
        te = [(half(a, j, 1 - part), half(b, j, 1 - part)) for j, (a, b) in enumerate(zip(phi_pi, phi_ref))]
        tr = [(a, b) for a, b in tr if len(a) and len(b)]
        te = [(a, b) for a, b in te if len(a) and len(b)]
        if not tr or not te:
            continue

        def neg(w):
            val, grad = 0.0, np.zeros(d)
            for a, b in tr:
                s = b @ w
                lse = logsumexp(s)
                p = np.exp(s - lse)
                val += a.mean(0) @ w - (lse - np.log(len(b)))
                grad += a.mean(0) - p @ b
            val /= len(tr)
            grad /= len(tr)
            return -(val - ridge * w @ w), -(grad - 2 * ridge * w)

        w = minimize(neg, np.zeros(d), jac=True, method="L-BFGS-B").x
        folds.append(np.mean([_dv(w, a, b) for a, b in te]))
    if not folds:
        raise ValueError("the fitted KL estimator needs at least 2 policy samples and 2 pi_ref samples per prompt")
    return float(np.mean(folds))
