"""The tidy table of a comparison: rows of plain values, a summary over seeds, CSV and text output."""

from __future__ import annotations

import csv
import io
import math
from typing import Any, Iterable

import numpy as np

#: the columns :meth:`Table.format` shows by default, in this order (when present)
DEFAULT_COLUMNS = ("algorithm", "seed", "status", "cost_model", "hints", "T_data", "T_comp", "T_comp.weak", "T_comp.strong",
                   "T_comp.token", "T_comp.enum", "subopt", "eval", "inf_T_comp", "inf_T_data", "wall_time")


class Table:
    """A tidy table: a list of row dicts plus ``meta`` (problem, budget, seeds, C_cov).

    No pandas needed; :meth:`to_pandas` converts when pandas is installed.
    """

    def __init__(self, rows: list[dict], meta: dict | None = None):
        self.rows = list(rows)
        self.meta = dict(meta or {})

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.rows:
            for k in r:
                if k not in cols:
                    cols.append(k)
        return cols

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]

    def where(self, **equal) -> "Table":
        """Rows whose columns equal the given values."""
        return Table([r for r in self.rows if all(r.get(k) == v for k, v in equal.items())], self.meta)

    def summary(self, by: str = "algorithm") -> "Table":
        """Mean of every numeric column per value of `by` (over seeds); 'n' counts the rows."""
        groups: dict = {}
        for r in self.rows:
            groups.setdefault(r.get(by), []).append(r)
        out = []
        for key, rs in groups.items():
            row: dict[str, Any] = {by: key, "n": len(rs)}
            for c in self.columns:
                if c in (by, "seed"):
                    continue
                vals = [r.get(c) for r in rs]
                nums = [v for v in vals if isinstance(v, (int, float, np.integer, np.floating))
                        and not isinstance(v, bool)]
                if nums and len(nums) == len(vals):
                    row[c] = float(np.mean(nums))
                elif all(v == vals[0] for v in vals):
                    row[c] = vals[0]
                else:
                    row[c] = "/".join(sorted({str(v) for v in vals}))
            out.append(row)
        return Table(out, self.meta)

    def to_pandas(self):
        try:
            import pandas as pd
        except ModuleNotFoundError as e:  # pragma: no cover - depends on the environment
            raise ModuleNotFoundError("Table.to_pandas needs pandas (pip install 'spanex[io]')") from e
        return pd.DataFrame(self.rows, columns=self.columns)

    def to_csv(self, path=None) -> str:
        """CSV text of the table (all columns); also written to `path` when given."""
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.rows:
            w.writerow({k: _plain(v) for k, v in r.items()})
        text = buf.getvalue()
        if path is not None:
            with open(path, "w", newline="") as fh:
                fh.write(text)
        return text

    def format(self, columns: Iterable[str] | None = None) -> str:
        """Fixed-width text; by default the DEFAULT_COLUMNS present, minus T_comp kinds that are all zero."""
        if columns is None:
            columns = [c for c in DEFAULT_COLUMNS if c in self.columns
                       and not (c.startswith("T_comp.") and _empty(self.column(c)))]
            columns += [c for c in self.columns if c not in DEFAULT_COLUMNS and c in ("n",)]
        columns = list(columns)
        cells = [[_fmt(r.get(c)) for c in columns] for r in self.rows]
        widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
        lines.append("  ".join("-" * w for w in widths))
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"Table({len(self.rows)} rows, columns={self.columns})"


def format_meta(meta: dict) -> str:
    """One line describing a comparison's ``meta``: problem, beta, d, C_cov, |Y|, budget, cost model."""
    parts = [f"problem={meta.get('problem')}", f"beta={meta.get('beta')}", f"d={meta.get('d')}"]
    if meta.get("params"):
        parts.append("params=" + ",".join(f"{k}={v}" for k, v in meta["params"].items()))
    if "C_cov" in meta:
        parts.append(f"C_cov={meta['C_cov']:.4g}")
        parts.append(f"|Y|={meta['n_responses']}")
    b = meta.get("budget") or {}
    parts.append("budget=" + (",".join(f"{k}={v}" for k, v in b.items() if v is not None) or "none"))
    parts.append(f"strong_oracle={meta.get('strong_oracle') or 'per-algorithm'}")
    return "  ".join(parts)


def _empty(vals) -> bool:
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v == 0) for v in vals)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


def _plain(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    return v
