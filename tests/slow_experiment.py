"""A test experiment whose runs sleep or fail on demand, importable as ``slowexp:Slow`` (also by the
subprocesses that the SIGKILL, lock and orphan tests start)."""

import os
import sys
import textwrap

import pytest

from spanex.experiments import registry

SLOW_EXPERIMENT = textwrap.dedent('''
    """A test experiment whose runs sleep, so that a sweep can be killed midway."""
    import time
    from dataclasses import dataclass

    import numpy as np

    from spanex.experiments.analysis import fit_slope, slope_verdict
    from spanex.experiments.base import BaseConfig, Experiment, RunOutput


    @dataclass(frozen=True)
    class Cfg(BaseConfig):
        n_seeds: int = 2
        n_points: int = 10
        sleep: float = 0.0
        fail_at: int = -1
        payload: int = 0


    class Slow(Experiment):
        name = "slow"
        title = "test experiment"
        description = "y = 2 x^1.5 with noise"
        Config = Cfg

        def quick_config(self):
            return Cfg(n_points=4)

        def points(self, cfg):
            return [{"i": i, "sleep": cfg.sleep, "fail_at": cfg.fail_at, "payload": cfg.payload}
                    for i in range(cfg.n_points)]

        def run_one(self, point, seeds):
            time.sleep(point["sleep"])
            if point["i"] == point["fail_at"]:
                raise RuntimeError("planned failure")
            rng = np.random.default_rng(seeds.algorithm)
            x = float(point["i"] + 1)
            return RunOutput(metrics={"x": x, "y": 2 * x ** 1.5 * float(np.exp(0.01 * rng.standard_normal())),
                                      "instance_draw": float(np.random.default_rng(seeds.instance).random()),
                                      "payload": [0.5] * point["payload"]},
                             ledger={"T_data": point["i"]}, trace=[{"round": 1}])

        def analyse(self, cfg, df):
            return [slope_verdict(self.name, "y ∝ x^a", fit_slope(df["x"], df["y"], df["replicate"]), 1.5, 0.1)]

        def plot(self, cfg, df, path):
            import matplotlib.pyplot as plt
            fig, ax = plt.subplots()
            ax.plot(df["x"], df["y"], "o")
            fig.savefig(path)
            plt.close(fig)
''')


@pytest.fixture
def slow_module(tmp_path, monkeypatch):
    d = tmp_path / "mods"
    d.mkdir()
    (d / "slowexp.py").write_text(SLOW_EXPERIMENT)
    monkeypatch.syspath_prepend(str(d))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(d), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setattr(registry, "_LOADED", {})  # forget specs loaded by earlier tests
    yield "slowexp:Slow"
    sys.modules.pop("slowexp", None)
