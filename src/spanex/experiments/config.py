"""Config overrides from the command line (``--set key=value``) and from a TOML file.

Values use TOML syntax, parsed by :func:`spanex.cli.parse_sets` (the one ``KEY=VALUE`` parser of
every subcommand): ``--set n_seeds=3``, ``--set betas=[0.1,0.2]``, ``--set regression='"logistic"'``
(a bare word that is not valid TOML is taken as a string: ``--set regression=logistic``). A key may
be prefixed by the name of an experiment being run (``--set spanner-scaling.n_seeds=3``) to target
it alone when several run; a prefix naming any other experiment is an error, as is a key that the
experiment's config does not have. A config file holds top-level keys (for every experiment run)
and/or one table per experiment::

    n_seeds = 3
    [spanner-scaling]
    eps_values = [0.2, 0.1]

A file may carry tables for experiments not run this time (so one file serves several commands);
they are ignored. The file must be a regular file of at most :data:`MAX_CONFIG_BYTES`, in UTF-8.

TOML is the supported format (``tomllib`` is in the standard library). YAML files are read only if
PyYAML happens to be installed; it is not a spanex dependency.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..cli import split_key
from ..limits import check_plain, read_bounded

#: a config file is a few lines; anything larger than this is refused before it is read
MAX_CONFIG_BYTES = 1 << 20


def load_file(path) -> dict:
    """The table of TOML (or YAML) file `path`; ValueError (TypeError for a date) naming ``--config``
    and what is wrong."""
    p = Path(path)
    what = f"--config {str(p)!r}"
    if not p.exists():
        raise ValueError(f"{what} does not exist")
    try:
        data = read_bounded(p, MAX_CONFIG_BYTES, what)
    except OSError as e:
        raise ValueError(f"{what} cannot be read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{what} is not UTF-8 text") from None
    try:
        if p.suffix in (".yaml", ".yml"):
            parsed = _load_yaml(text, what)
        else:
            try:
                parsed = tomllib.loads(text)
            except tomllib.TOMLDecodeError as e:
                raise ValueError(f"{what} is not valid TOML: {e}") from None
        check_plain(parsed, what)  # LimitError (a ValueError) if too deep, TypeError if not plain data
    except RecursionError:  # tomllib and yaml recurse once per nesting level
        raise ValueError(f"{what} is nested too deeply") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"{what} must hold a table of keys")
    return parsed


def _load_yaml(text: str, what: str):
    try:
        import yaml
    except ModuleNotFoundError:
        raise ValueError("YAML config files need PyYAML, which is not a spanex dependency; "
                         "use a TOML file (.toml) instead") from None
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{what} is not valid YAML: {' '.join(str(e).split())}") from None


def overrides_for(experiment: str, file_data: dict, sets: dict, running, known) -> dict:
    """The overrides that apply to `experiment`: file top level, file table, then --set (last wins).

    `running` are the names of the experiments this command runs, `known` every experiment name a
    config table may use. A ``--set NAME.KEY`` whose NAME is not running is an error.
    """
    out = {}
    for k, v in file_data.items():
        if isinstance(v, dict):
            if k not in known and k not in running:
                raise ValueError(f"config table [{k}] is not an experiment; known: {', '.join(known)}")
            if k == experiment:
                out.update(v)
        else:
            out[k] = v
    for k, v in sets.items():
        exp, key = split_key(k)
        if exp is None:
            out[k] = v
        elif exp not in running:
            what = "is not being run" if exp in known else "is not an experiment"
            raise ValueError(f"--set {k}: {exp!r} {what}; a prefixed key targets one of the experiments run "
                             f"here ({', '.join(running)})")
        elif exp == experiment:
            out[key] = v
    return out
