import subprocess
import sys

from spanex.cli import main


def test_demo_prints_the_table_and_succeeds(capsys):
    assert main(["demo", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "C_cov = 17.48" in out                       # the default instance's exact coverage
    assert "T_data" in out and "T_comp" in out and "suboptimality" in out
    assert "suboptimality <= eps on all seeds: yes" in out


def test_demo_bad_arguments_exit_2(capsys):
    assert main(["demo", "--seeds", "0"]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().out
    assert main(["demo", "--beta", "-1", "--seeds", "1"]) == 2
    assert "beta" in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2():
    r = subprocess.run([sys.executable, "-m", "spanex.cli"], capture_output=True, text=True)
    assert r.returncode == 2 and "demo" in r.stdout
