"""The test run's hang watchdog (pytest.ini): a test blocked inside C code that holds the GIL, where
no Python signal handler can run, still ends the run quickly with the test's stack.

CI once sat for over an hour inside one in-process ROS test and printed nothing: pytest-timeout's
signal handler never ran. pytest's faulthandler watchdog runs in its own C thread."""
from __future__ import annotations

import configparser
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

HUNG_TEST = '''
import ctypes


def test_blocked_in_c_holding_the_gil():
    # PyDLL keeps the GIL for the call: no Python code, and so no signal handler, runs for 60 s
    ctypes.PyDLL(None).sleep(60)
'''


def _ini() -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "pytest.ini")
    return parser["pytest"]


def test_the_project_ini_ends_a_hung_run_after_the_per_test_timeout():
    ini = _ini()
    assert ini.getboolean("faulthandler_exit_on_timeout") is True
    per_test, hard = float(ini["timeout"]), float(ini["faulthandler_timeout"])
    # the gentle limit (one test fails, the run goes on) comes first; the hard one well inside
    # CI's 90 minutes
    assert 0 < per_test < hard <= 600


def test_a_test_blocked_in_c_with_the_gil_ends_the_run_with_its_stack(tmp_path):
    (tmp_path / "test_hung.py").write_text(HUNG_TEST)
    start = time.monotonic()
    # the project's pytest.ini, with the hard limit shortened to 2 s; pytest-timeout off, since
    # its signal handler could not run here anyway
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:timeout",
         "-c", str(ROOT / "pytest.ini"), "--rootdir", str(tmp_path),
         "-o", "faulthandler_timeout=2", str(tmp_path / "test_hung.py")],
        capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    assert result.returncode != 0, result.stdout
    assert elapsed < 40, f"the hung run took {elapsed:.0f} s, not about 2 s"
    assert "Timeout (0:00:02)!" in result.stderr, result.stderr
    assert "test_blocked_in_c_holding_the_gil" in result.stderr, result.stderr
