"""Fuzz every public entry point (tests/fuzz_cases.py): constructors of every registered algorithm and instance,
the samplers, Budget, tabular_problem, run() on tiny problems under tiny budgets, evaluate, coverage,
policy.probs and the command line.

Property: each input gives a clear error (SpanexError, ValueError or TypeError naming an argument; for the CLI
exit code 2 with one line) or a finite, valid result (see fuzz_cases). Inputs are derandomized and there is
no example database, so every run checks the same inputs; ``python tests/fuzz_census.py`` counts outcomes
over many more of them.
"""

import os
import sys

import pytest
from hypothesis import HealthCheck, Phase, given, settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fuzz_cases  # noqa: E402

CASES = {case.name: case for case in fuzz_cases.all_cases()}
#: inputs per case: the whole file stays well under a minute on 2 cores
EXAMPLES = 40
#: one input may take at most this long (a hang or an unbounded loop fails the test instead of stalling it)
TIME_LIMIT_S = 15.0


@pytest.fixture(scope="module", autouse=True)
def bounded_memory():
    """An input that allocates without bound fails with MemoryError instead of exhausting the machine."""
    with fuzz_cases.memory_cap(3 << 30):
        yield


@pytest.mark.parametrize("name", sorted(CASES))
def test_clear_error_or_finite_result(name):
    case = CASES[name]

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate, Phase.shrink], suppress_health_check=list(HealthCheck))
    @given(case.strategy)
    def check(inp):
        out = case.run(inp, TIME_LIMIT_S)
        assert out.ok, f"{case.name}: {out.kind}: {out.detail}\ninput: {inp!r}"[:2000]

    check()


def test_the_outcome_classifier_tells_the_kinds_apart():
    """The property's judge: a clear error must name an argument; numpy's messages and other exceptions fail."""
    import numpy as np

    def raises(e):
        def body():
            raise e
        return body

    assert fuzz_cases.outcome(raises(ValueError("beta must be > 0")), ["beta"]).kind == "clear"
    assert fuzz_cases.outcome(raises(ValueError("Maximum allowed dimension exceeded")), ["n"]).kind == "unclear"
    assert fuzz_cases.outcome(raises(OverflowError("int too large")), ["n"]).kind == "bad"
    assert fuzz_cases.outcome(raises(np.linalg.LinAlgError("Singular matrix")), ["lam"]).kind == "bad"
    assert fuzz_cases.outcome(lambda: fuzz_cases.finite("J", float("nan")), []).kind == "bad"
    assert fuzz_cases.outcome(lambda: None, []).kind == "finite"
    assert fuzz_cases.outcome(lambda: [0 for _ in iter(int, 1)], [], time_limit_s=0.2).kind == "bad"   # a hang
