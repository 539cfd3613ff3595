"""Config overrides from the command line (``--set key=value``) and from a TOML file.

Values use TOML syntax: ``--set n_seeds=3``, ``--set betas=[0.1,0.2]``, ``--set regression='"logistic"'``
(a bare word that is not valid TOML is taken as a string: ``--set regression=logistic``). A key may be
prefixed by an experiment name (``--set spanner-scaling.n_seeds=3``) to target one experiment when
several run. A config file holds top-level keys (for every experiment run) and/or one table per
experiment::

    n_seeds = 3
    [spanner-scaling]
    eps_values = [0.2, 0.1]

TOML is the supported format (``tomllib`` is in the standard library). YAML files are read only if
PyYAML happens to be installed; it is not a spanex dependency.
"""

from __future__ import annotations

import tomllib
from pathlib import Path


def parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_sets(items) -> dict:
    """``["a=1", "exp.b=[1,2]"]`` -> ``{"a": 1, "exp.b": [1, 2]}``; raises ValueError on bad items."""
    out = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k:
            raise ValueError(f"--set expects KEY=VALUE with a non-empty KEY, got {item!r}")
        out[k] = parse_value(v.strip())
    return out


def load_file(path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--config file {str(p)!r} does not exist")
    if p.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError:
            raise ValueError("YAML config files need PyYAML, which is not a spanex dependency; "
                             "use a TOML file (.toml) instead") from None
        data = yaml.safe_load(p.read_text()) or {}
    else:
        try:
            data = tomllib.loads(p.read_text())
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"--config file {str(p)!r} is not valid TOML: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config file {str(p)!r} must hold a table of keys")
    return data


def overrides_for(experiment: str, file_data: dict, sets: dict, all_names) -> dict:
    """The overrides that apply to `experiment`: file top level, file table, then --set (last wins)."""
    out = {}
    for k, v in file_data.items():
        if isinstance(v, dict):
            if k not in all_names:
                raise ValueError(f"config table [{k}] is not an experiment; known: {', '.join(all_names)}")
            if k == experiment:
                out.update(v)
        else:
            out[k] = v
    for k, v in sets.items():
        if "." in k:
            exp, key = k.rsplit(".", 1)
            if exp not in all_names:
                raise ValueError(f"--set {k}: {exp!r} is not an experiment; known: {', '.join(all_names)}")
            if exp == experiment:
                out[key] = v
        else:
            out[k] = v
    return out
