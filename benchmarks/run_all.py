"""Run every ``benchmarks/bench_*.py`` and print their figures with one summary table.

    .venv/bin/python benchmarks/run_all.py [--full] [--only NAME ...] [--markdown FILE] [--timeout S]

Each benchmark runs in its own process (``sys.executable``), with ``--quick`` when its source
declares that flag (unless ``--full``). Its printed figures are shown under a heading; the summary
table lists every benchmark with its exit status, wall time and the exact command, so a figure can
be reproduced. ``--markdown FILE`` also writes the whole output as Markdown (used for BENCHMARKS.md).
A failing or timed-out benchmark is reported in the table and makes the exit code 1; the others
still run.
"""

from __future__ import annotations

import argparse
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover(only=None) -> list[Path]:
    paths = sorted(HERE.glob("bench_*.py"))
    if only:
        names = {n.removeprefix("bench_").removesuffix(".py") for n in only}
        unknown = names - {p.stem.removeprefix("bench_") for p in paths}
        if unknown:
            raise SystemExit(f"run_all.py: error: unknown benchmark(s) {sorted(unknown)}; "
                             f"known: {[p.stem.removeprefix('bench_') for p in paths]}")
        paths = [p for p in paths if p.stem.removeprefix("bench_") in names]
    return paths


def accepts_quick(path: Path) -> bool:
    return "--quick" in path.read_text()


def run_one(path: Path, full: bool, timeout: float) -> dict:
    cmd = [sys.executable, str(path.relative_to(HERE.parent))]
    if not full and accepts_quick(path):
        cmd.append("--quick")
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=HERE.parent, capture_output=True, text=True, timeout=timeout)
        status = "ok" if res.returncode == 0 else f"exit {res.returncode}"
        out, err = res.stdout, res.stderr
    except subprocess.TimeoutExpired as e:
        status = f"timeout {timeout:.0f}s"
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = ""
    wall = time.perf_counter() - t0
    shown = " ".join([".venv/bin/python"] + [shlex.quote(c) for c in cmd[1:]])
    return {"name": path.stem, "status": status, "wall": wall, "command": shown, "stdout": out, "stderr": err}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="run the full versions (no --quick)")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks (e.g. core lm)")
    ap.add_argument("--markdown", metavar="FILE", help="also write the output as Markdown")
    ap.add_argument("--timeout", type=float, default=1800, help="per-benchmark timeout in seconds (default 1800)")
    args = ap.parse_args(argv)
    if args.timeout <= 0:
        ap.error(f"--timeout must be > 0, got {args.timeout}")
    results = []
    lines = [f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""]
    print(lines[0])
    for path in discover(args.only):
        r = run_one(path, args.full, args.timeout)
        results.append(r)
        block = [f"## {r['name']}  (`{r['command']}`, {r['wall']:.1f} s, {r['status']})", "", "```",
                 r["stdout"].rstrip(), "```", ""]
        if r["status"] != "ok" and r["stderr"].strip():
            block[-1:-1] = ["stderr (last lines):", "```", *r["stderr"].strip().splitlines()[-10:], "```"]
        print("\n".join(block), flush=True)
        lines += block
    table = ["| benchmark | status | wall time (s) | command |", "|---|---|---|---|"]
    table += [f"| {r['name']} | {r['status']} | {r['wall']:.1f} | `{r['command']}` |" for r in results]
    print("\n".join(["## summary", ""] + table))
    if args.markdown:
        Path(args.markdown).write_text("\n".join(["# benchmark run", ""] + lines + ["## summary", ""] + table) + "\n")
    return 0 if all(r["status"] == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
