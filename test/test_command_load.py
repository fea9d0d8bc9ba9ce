"""The commands' model load is bounded as the nodes' is (SECURITY.md R87).

``detect``, ``replay``, ``eval`` and the fleet's workers built their models on the calling thread:
an onnxruntime session creation (or OpenVINO compile) that never returned held the command for
ever, with nothing said. Each test blocks the first session creation on an Event (as the nodes'
R85 tests do) and lets it go only at the end.
"""
from __future__ import annotations

import _thread
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from replay_helpers import FRONT, SAMPLE_BAG

from sense_perception.cli.main import main
from sense_perception.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
STREET = ROOT.parent / "shared" / "data" / "street" / "pandaset_seq002_front_camera_40.jpg"
CONFIG = """object_detector:
  ros__parameters:
    warm_up_timeout_s: {timeout}
    runtime:
      providers: [CPUExecutionProvider]
      openvino: "off"
"""


class HungSession:
    """The first onnxruntime session created blocks until :meth:`release` (a provider's engine
    build or a GPU driver that never returns); the later ones load as they do."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import onnxruntime

        self.entered, self.released, self.returned = (threading.Event(), threading.Event(),
                                                      threading.Event())
        self.threads: list[threading.Thread] = []
        real = onnxruntime.InferenceSession

        def session(*args: Any, **kwargs: Any) -> Any:
            if not self.threads:
                self.threads.append(threading.current_thread())
                self.entered.set()
                self.released.wait(20)
                self.returned.set()
            return real(*args, **kwargs)

        monkeypatch.setattr(onnxruntime, "InferenceSession", session)

    def release(self) -> None:
        """Let the hung creation go and wait for its thread (none of its results is used)."""
        self.released.set()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join(30)


def _config(tmp_path: Path, timeout: float) -> str:
    path = tmp_path / f"config_{timeout:g}.yaml"
    path.write_text(CONFIG.format(timeout=timeout))
    return str(path)


def _files(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _says_the_load_hung(err: str, command: str) -> None:
    err = err.strip()
    assert err.startswith("error: the load of picodet_s_416 (an onnxruntime session on "
                          "CPUExecutionProvider) has not returned after "), err
    assert "(object_detector's warm_up_timeout_s 0.5)" in err, err
    assert f"so {command} stopped before writing anything" in err, err
    assert "raise object_detector's warm_up_timeout_s in --config" in err, err
    assert "list CPUExecutionProvider alone" in err and f"run {command} again" in err, err


def _eval_input(tmp_path: Path) -> Path:
    image = tmp_path / "imgs" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"cameras": {"front/00": {
        "image": "imgs/a.png", "boxes": [{"label": "car", "bbox_xyxy": [5, 5, 40, 20]}]}}}))
    return gt


@pytest.mark.parametrize("command", ["detect", "eval"])
def test_a_hung_model_load_ends_detect_and_eval_naming_it(tmp_path, monkeypatch, capsys,
                                                          command):
    """R87: the load gives up after warm_up_timeout_s (exit 2), naming the model, what it was
    doing, the time waited and the fix, and nothing is written (was: never returned)."""
    hung = HungSession(monkeypatch)
    out = tmp_path / "out"
    args = {"detect": [str(STREET)], "eval": [str(_eval_input(tmp_path)), "--no-curve"]}[command]
    try:
        code = main([command, *args, "--out", str(out), "--config", _config(tmp_path, 0.5)])
        assert hung.entered.is_set() and not hung.returned.is_set()  # it gave up on it, hung
    finally:
        hung.release()
    assert code == 2
    _says_the_load_hung(capsys.readouterr().err, command)
    assert hung.threads[0].name == f"{command}-load" and hung.threads[0].daemon
    written = [p.name for p in out.iterdir()] if out.exists() else []
    assert [n for n in written if not n.startswith(".sense-perception")] == [], written


def test_a_hung_model_load_ends_replay_and_keeps_the_earlier_output(tmp_path, monkeypatch,
                                                                    capsys):
    """R87, replay: the same, and an earlier replay's output in --out is kept byte for byte
    (neither destroyed nor replaced by one that looks complete)."""
    out = tmp_path / "out"
    assert main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", FRONT,
                 "--config", _config(tmp_path, 600)]) == 0
    before = _files(out)
    assert "summary.json" in before
    capsys.readouterr()
    hung = HungSession(monkeypatch)
    try:
        code = main(["replay", str(SAMPLE_BAG), "--out", str(out), "--topics", FRONT, "--force",
                     "--config", _config(tmp_path, 0.5)])
        assert hung.entered.is_set() and not hung.returned.is_set()
    finally:
        hung.release()
    assert code == 2
    _says_the_load_hung(capsys.readouterr().err, "replay")
    assert _files(out) == before


def test_a_fleet_workers_hung_model_load_is_named(tmp_path, monkeypatch):
    """R87, a fleet worker: its load gives up after warm_up_timeout_s naming the model (the
    worker's ``ready`` reports it), where the fleet waited its start_timeout_s (600 s) and then
    said only that no worker started."""
    from sense_perception.fleet.worker import BagWorker, WorkerSettings

    hung = HungSession(monkeypatch)
    try:
        with pytest.raises(ModelError) as caught:
            BagWorker(WorkerSettings(out=tmp_path / "out",
                                     config=Path(_config(tmp_path, 0.5))))
        assert hung.entered.is_set() and not hung.returned.is_set()
    finally:
        hung.release()
    text = str(caught.value)
    assert text.startswith("the load of picodet_s_416 (an onnxruntime session on "
                           "CPUExecutionProvider) has not returned after "), text
    assert "so this fleet worker could not start" in text and "run fleet again" in text, text


def test_ctrl_c_during_a_hung_model_load_stops_the_command_at_once(tmp_path, monkeypatch,
                                                                   capsys):
    """R87: the load runs in a thread of its own, so Ctrl-C ends the wait at once (exit 130),
    the bound far off; the main thread sat inside the hung call, where no Ctrl-C handler runs
    until the call returns."""
    hung = HungSession(monkeypatch)
    # Ctrl-C as the signal handler delivers it to the main thread (the command runs there)
    interrupter = threading.Thread(target=lambda: hung.entered.wait(30) and
                                   _thread.interrupt_main())
    interrupter.start()
    try:
        code = main(["detect", str(STREET), "--out", str(tmp_path / "out"),
                     "--config", _config(tmp_path, 600)])
        # ended while the load hangs, in a thread of its own: the main thread sat in the hung
        # call (here a Python wait, which the simulated Ctrl-C ends only at its 20 s timeout)
        assert hung.entered.is_set() and not hung.released.is_set()
        assert hung.threads[0] is not threading.main_thread() and hung.threads[0].is_alive()
    finally:
        hung.release()
        interrupter.join(30)
    assert code == 130
    assert not (tmp_path / "out").exists()


def test_a_command_ends_its_process_without_the_load_it_gave_up_on(tmp_path):
    """R87: a load the command gave up on goes on in its thread; back from OpenVINO or
    onnxruntime while Python finalized, it ended the process in ``terminate called without an
    active exception`` (exit 134, 3 of 6 runs of a detect whose bound ran out in a real OpenVINO
    compile, measured by hand), the error's exit status 2 lost. The console script waits a
    moment for it, then ends the process without it (``os._exit``), saying so. (Here the load
    hangs for good, so that the test does not depend on the machine's speed.)"""
    script = tmp_path / "hung_detect.py"
    script.write_text(HUNG_DETECT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), "detect", str(STREET), "--out",
                           str(tmp_path / "out"), "--config", _config(tmp_path, 0.5)],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "error: the load of picodet_s_416" in done.stderr, done.stderr[-2000:]
    assert "terminate called" not in done.stderr
    assert "the model load this command gave up on is still running (threads detect-load); " \
           "the process ends without it" in done.stderr, done.stderr[-2000:]
    assert not (tmp_path / "out").exists()


#: The console script with the first onnxruntime session creation hung for good.
HUNG_DETECT = """
import sys
import threading

import onnxruntime

from sense_perception.cli import main as cli

onnxruntime.InferenceSession = lambda *args, **kwargs: threading.Event().wait(600)
sys.argv = ["sense-perception", *sys.argv[1:]]
sys.exit(cli.main())
"""


FACES = ROOT.parent / "shared" / "data" / "faces"
FACE = str(FACES / "obama_1_official_portrait_2012.jpg")
FACE_CONFIG = """driver_monitor:
  ros__parameters:
    warm_up_timeout_s: {timeout}
    runtime:
      providers: [CPUExecutionProvider]
"""


def _signal_once_marked(argv: list[str], mark: Path, signame: str, cwd: Path, what: str,
                        start_s: float, end_s: float) -> tuple[int, str, str]:
    """Run ``python ARGV`` (the checkout importable), send it ``signame`` once ``mark`` exists
    (within ``start_s``, else fail saying it never reached ``what``); its exit status, standard
    output and error (the process killed if it outlives ``end_s``)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + start_s
        while not mark.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"the command never reached {what}"
            time.sleep(0.05)
        proc.send_signal(getattr(signal, signame))
        out, err = proc.communicate(timeout=end_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


def _driver_args(tmp_path: Path, command: str) -> list[str]:
    gallery = ["--gallery", str(tmp_path / "g" / "gallery.json")]
    if command == "enroll":
        return ["--name", "Barack", "--consent", *gallery, "--images", FACE]
    if command == "enroll-bag":
        from test_driver_cli import _write_bag

        bag = tmp_path / "cabin_bag"
        _write_bag(bag, [cv2.imread(FACE)], "/cabin/image/compressed")
        return ["--name", "Barack", "--consent", *gallery, "--bag", str(bag), "--topic",
                "/cabin/image/compressed"]
    if command == "identify":
        return [*gallery, FACE]
    (tmp_path / "out").mkdir()
    if command == "attention":
        return ["--json-out", str(tmp_path / "out" / "attention.json"), FACE]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"file_x,file_y,same\n{FACE},{FACE},1\n")
    return ["--json-out", str(tmp_path / "out" / "eval.json"), "--pairs", str(pairs)]


@pytest.mark.parametrize("command", ["enroll", "enroll-bag", "identify", "attention", "eval"])
def test_a_hung_face_model_load_ends_the_driver_commands_naming_it(tmp_path, monkeypatch, capsys,
                                                                   command):
    """R90: the driver commands built their face models on the calling thread, unbounded (R87
    left them): a session creation that never returned held them for ever. They give up after
    driver_monitor's warm_up_timeout_s now (exit 2), as detect does, naming the model, the time
    waited and the fix; nothing is written (no gallery, no result file)."""
    config = tmp_path / "face.yaml"
    config.write_text(FACE_CONFIG.format(timeout=0.5))
    args = _driver_args(tmp_path, command)  # before the hang: a bag's frames are encoded here
    name = command.split("-")[0]
    hung = HungSession(monkeypatch)
    try:
        code = main(["driver", name, *args, "--config", str(config)])
        assert hung.entered.is_set() and not hung.returned.is_set()  # it gave up on it, hung
    finally:
        hung.release()
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after enroll's note on --name
    assert code == 2, err
    assert err.startswith("error: the load of yunet (an onnxruntime session on "
                          "CPUExecutionProvider) has not returned after "), err
    assert "(driver_monitor's warm_up_timeout_s 0.5)" in err, err
    assert f"so driver {name} stopped before writing anything" in err, err
    assert "raise driver_monitor's warm_up_timeout_s in --config" in err, err
    assert f"run driver {name} again" in err, err
    assert hung.threads[0].name == f"driver-{name}-load" and hung.threads[0].daemon
    assert not (tmp_path / "g").exists() and not any((tmp_path / "out").glob("*"))


#: benchmarks/run.py with every onnxruntime session the driver benchmark creates hung for good.
HUNG_BENCH = """
import runpy
import sys
import threading
import traceback

import onnxruntime

real = onnxruntime.InferenceSession


def session(*args, **kwargs):
    if any(f.filename.endswith("bench_driver.py") for f in traceback.extract_stack()):
        threading.Event().wait(600)
    return real(*args, **kwargs)


onnxruntime.InferenceSession = session
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_hung_benchmarks(tmp_path: Path, wrapper: str, only: str
                         ) -> tuple[subprocess.CompletedProcess[str], Path]:
    """``benchmarks/run.py --quick --only ONLY --warm-up-timeout 30`` run through ``wrapper`` (a
    script that hangs one load, then runs the benchmarks); the finished process and the results
    path it was given."""
    script = tmp_path / "hung_benchmarks.py"
    script.write_text(wrapper)
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(script), str(ROOT / "benchmarks" / "run.py"),
                           "--quick", "--only", only, "--out", str(out),
                           "--warm-up-timeout", "30"],  # the detector's real load fits
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          timeout=300, cwd=tmp_path)
    return done, out


def test_a_hung_face_model_load_ends_the_benchmarks_naming_it(tmp_path):
    """R90: benchmarks/run.py built its models unbounded (R87 left it): a face model's session
    creation that never returned held it for ever. It gives up after --warm-up-timeout now,
    naming the model and the fix, exit 2, no results written, and the process ends without the
    hung load (as the console script does). (The bound is generous: the detector's load before
    the face models' is real.)"""
    done, out = _run_hung_benchmarks(tmp_path, HUNG_BENCH, "driver")
    err = done.stderr
    assert done.returncode == 2, (done.returncode, err[-2000:])
    assert ("error: the load of yunet (an onnxruntime session on CPUExecutionProvider) has not "
            "returned after ") in err, err[-2000:]
    assert "(--warm-up-timeout 30), so the benchmarks stopped before writing any result" in err
    assert "raise --warm-up-timeout; else" in err and "run benchmarks/run.py again" in err, err
    assert "the process ends without it" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()


#: benchmarks/run.py with the OpenCV-DNN demo's readNetFromONNX hung for good.
HUNG_CV2DNN = """
import runpy
import sys
import threading

import cv2

cv2.dnn.readNetFromONNX = lambda *args, **kwargs: threading.Event().wait(600)
sys.argv = [sys.argv[1], *sys.argv[2:]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_a_hung_cv2dnn_demo_load_ends_the_benchmarks_naming_it(tmp_path):
    """R94: the cv2.dnn demo's ``readNetFromONNX`` ran on the calling thread, unbounded (R90's
    row left it): one that never returned held ``benchmarks/run.py`` for ever. It is bounded by
    --warm-up-timeout as every other load of the benchmarks, with the same error: exit 2,
    naming the demo's model, no results written, the process ending without the hung load."""
    done, out = _run_hung_benchmarks(tmp_path, HUNG_CV2DNN, "cv2dnn")
    err = done.stderr
    assert done.returncode == 2, (done.returncode, err[-2000:])
    assert re.search(r"error: the load of picodet_s_416 in the OpenCV-DNN demo \(cv2\.dnn\."
                     r"readNetFromONNX\) has not returned after 3\d s \(--warm-up-timeout 30\), "
                     "so the benchmarks stopped before writing any result",
                     " ".join(err.split())), err[-2000:]
    assert "run benchmarks/run.py again" in err, err[-2000:]
    assert "the process ends without it" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()


def test_a_driver_command_ends_its_process_naming_the_load_left_running(tmp_path):
    """R90: as detect, `driver identify` ends its process without the hung face model load
    (exit 2), and the note names the load's thread whole: the thread's name had the command's
    space (``driver identify-load``), and the note, which names each load by its thread's first
    word, said ``threads driver``."""
    config = tmp_path / "face.yaml"
    config.write_text(FACE_CONFIG.format(timeout=0.5))
    script = tmp_path / "hung_driver.py"
    script.write_text(HUNG_DETECT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script), "driver", "identify", "--gallery",
                           str(tmp_path / "g" / "gallery.json"), "--config", str(config), FACE],
                          capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "error: the load of yunet" in done.stderr, done.stderr[-2000:]
    assert "the model load this command gave up on is still running (threads "  \
           "driver-identify-load); the process ends without it" in done.stderr, done.stderr


#: HUNG_DETECT whose console script waits a minute for the load it gave up on, a file made
#: (argv[1]) once that wait has begun, so that a test signals the command in it.
HUNG_THEN_WAITING = """
import sys
import threading
from pathlib import Path

import onnxruntime

import sense_perception.core.runtime.warm_up as warm_up
from sense_perception.cli import main as cli

waiting, real = Path(sys.argv[1]), warm_up.unfinished_jobs


def unfinished_jobs(deadline):
    waiting.touch()
    return real(deadline)


cli.LOAD_GRACE_S = 60.0
warm_up.unfinished_jobs = unfinished_jobs
onnxruntime.InferenceSession = lambda *args, **kwargs: threading.Event().wait(600)
sys.argv = ["sense-perception", *sys.argv[2:]]
sys.exit(cli.main())
"""


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stop_while_a_command_waits_for_the_load_it_gave_up_on_is_obeyed(tmp_path, signame,
                                                                             code):
    """R103: once a command has given up on its model load (its bound ran out: the error said,
    exit 2), main waits a moment for the load's thread inside the command's stop block (R101),
    which a stop ends; the stop was then lost (:func:`unfinished_jobs` catches it): a SIGTERM or
    Ctrl-C there exited 2, as if none had come (before R101 SIGTERM's default ended the process
    by the signal). The first stop is obeyed now: 143 / 130, the error and the note still said,
    no traceback."""
    script = tmp_path / "hung_waiting.py"
    script.write_text(HUNG_THEN_WAITING)
    waiting = tmp_path / "waiting"
    code_, out, err = _signal_once_marked(
        [str(script), str(waiting), "detect", str(STREET), "--out", str(tmp_path / "out"),
         "--config", _config(tmp_path, 0.5)], waiting, signame, tmp_path,
        "the wait for the load it gave up on", start_s=120, end_s=60)
    assert code_ == code, (code_, err[-2000:])
    assert "error: the load of picodet_s_416" in err, err[-2000:]
    assert "the model load this command gave up on is still running (threads detect-load)" \
        in err, err[-2000:]
    assert "Traceback" not in err, err[-2000:]


class _HungUpTerminal:
    """Standard error on a terminal that hung up: every write and flush fails with EIO."""

    def write(self, text: str) -> int:
        raise OSError(5, "Input/output error")  # errno.EIO

    def flush(self) -> None:
        raise OSError(5, "Input/output error")

    def fileno(self) -> int:  # none to redirect: a test must not dup2 onto pytest's descriptors
        raise OSError(9, "no descriptor here")


def test_the_note_on_a_load_left_running_survives_a_hung_up_terminal(monkeypatch):
    """R91: the console script's note on a load it gave up on (R87) was printed after main had put
    the raw standard streams back, past R89's wrapper that sends a hung-up terminal's output to
    /dev/null: a command stopped by SIGHUP during a hung load (exit 129) met EIO there, and the
    OSError raised out of main, so the process never reached ``os._exit`` and finalized with the
    load still running (``terminate called``, SIGABRT). The note goes through the wrapper now:
    lost with the terminal, the process ends with the command's exit status."""
    import sense_perception.core.runtime.warm_up as warm_up
    import sense_perception.stops as stops

    class Ended(Exception):
        pass

    def exit_now(code: int) -> None:
        raise Ended(code)

    monkeypatch.setattr(warm_up, "unfinished_jobs", lambda deadline: ["detect-load"])
    monkeypatch.setattr(stops, "exit_now", exit_now)
    monkeypatch.setattr(sys, "argv", ["sense-perception"])  # no command: help, exit 2
    monkeypatch.setattr(sys, "stdout", _HungUpTerminal())
    monkeypatch.setattr(sys, "stderr", _HungUpTerminal())
    with pytest.raises(Ended) as ended:
        main()
    assert ended.value.args == (2,)


#: The console script with the first onnxruntime session creation hung for good, a file made
#: once it hangs (argv[1]), so that a test signals the command in its load, not before.
HUNG_SAYING_SO = """
import sys
import threading
from pathlib import Path

import onnxruntime

from sense_perception.cli import main as cli

entered = Path(sys.argv[1])


def session(*args, **kwargs):
    entered.touch()
    threading.Event().wait(600)


onnxruntime.InferenceSession = session
sys.argv = ["sense-perception", *sys.argv[2:]]
sys.exit(cli.main())
"""


@pytest.mark.parametrize("command, signame, code", [("identify", "SIGTERM", 143),
                                                    ("identify", "SIGHUP", 129),
                                                    ("attention", "SIGTERM", 143),
                                                    ("eval", "SIGHUP", 129)])
def test_sigterm_or_sighup_during_a_driver_commands_load_stops_it_as_the_others(
        tmp_path, command, signame, code):
    """R94: `driver identify` (and `attention`, `eval`) loaded the face models outside any
    ``stop_signals`` block: SIGTERM (a service manager, ``timeout``) or SIGHUP (a closed
    terminal) during the load ended the process at once by the signal's default (exit -15 /
    -1), where ``enroll`` and the other commands stop (exit 143 / 129) and name the load left
    running as the process ends. Sent here as a real signal to a real process, its load hung
    (the bound far off)."""
    config = tmp_path / "face.yaml"
    config.write_text(FACE_CONFIG.format(timeout=600))
    script, entered = tmp_path / "hung_driver.py", tmp_path / "entered"
    script.write_text(HUNG_SAYING_SO)
    args = _driver_args(tmp_path, command)
    returncode, _, err = _signal_once_marked(
        [str(script), str(entered), "driver", command, *args, "--config", str(config)], entered,
        signame, tmp_path, "its load", start_s=120, end_s=60)
    assert returncode == code, (returncode, err[-2000:])
    assert "Traceback" not in err, err
    assert (f"the model load this command gave up on is still running (threads "
            f"driver-{command}-load); the process ends without it") in err, err
    assert not (tmp_path / "g").exists() and not any((tmp_path / "out").glob("*"))


#: The console script with the photo reading of `driver identify` hung after its first photo, a
#: file made once it hangs (argv[1]).
HUNG_PHOTO = """
import sys
import threading
from pathlib import Path

from sense_perception.cli import driver
from sense_perception.cli import main as cli

entered, real, read = Path(sys.argv[1]), driver._read_image, []


def read_image(path, args):
    if read:
        entered.touch()
        threading.Event().wait(600)
    read.append(path)
    return real(path, args)


driver._read_image = read_image
sys.argv = ["sense-perception", *sys.argv[2:]]
sys.exit(cli.main())
"""


@pytest.mark.parametrize("signame, code", [("SIGTERM", 143), ("SIGHUP", 129)])
def test_sigterm_or_sighup_among_identifys_photos_stops_it_as_the_others(tmp_path, signame,
                                                                         code):
    """R94: past its load too, `driver identify` ran outside any ``stop_signals`` block: SIGTERM
    or SIGHUP while it read its photos ended it by the signal's default (exit -15 / -1). It
    stops as the other commands do now (exit 143 / 129, no traceback)."""
    config = tmp_path / "face.yaml"
    config.write_text(FACE_CONFIG.format(timeout=600))
    script, entered = tmp_path / "hung_photo.py", tmp_path / "entered"
    script.write_text(HUNG_PHOTO)
    returncode, out, err = _signal_once_marked(
        [str(script), str(entered), "driver", "identify", "--gallery",
         str(tmp_path / "g" / "gallery.json"), "--config", str(config), FACE, FACE], entered,
        signame, tmp_path, "its second photo", start_s=180, end_s=60)
    assert returncode == code, (returncode, err[-2000:])
    assert "Traceback" not in err, err
    assert out.startswith(f"{FACE}: unknown (nobody is enrolled"), out  # the first photo's line


#: The console script with the second photo read hung (a file made once it hangs: argv[1]) when
#: argv[3] is "read", and the ``--json-out`` write held (a file made as it begins: argv[2]) until
#: the stop the test sends has arrived (kept for the write's end); the command's arguments follow.
HUNG_READ_OR_WRITE = """
import signal
import sys
import time
from pathlib import Path

import sense_perception.core.imaging.image_file as image_file
import sense_perception.fileio as fileio
from sense_perception.cli import main as cli

reading, writing, point = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
real_read, real_write, read = image_file.read_image_file, fileio.write_result_json, []


def read_image_file(path, *args, **kwargs):
    if read and point == "read":
        reading.touch()
        time.sleep(600)
    read.append(path)
    return real_read(path, *args, **kwargs)


def write_result_json(*args, **kwargs):
    writing.touch()
    stops = signal.getsignal(signal.SIGTERM).__self__  # the Stops holding this write
    deadline = time.monotonic() + 120
    while stops._pending is None and time.monotonic() < deadline:  # the stop has arrived
        time.sleep(0.05)
    return real_write(*args, **kwargs)


image_file.read_image_file = read_image_file
fileio.write_result_json = write_result_json
sys.argv = ["sense-perception", *sys.argv[4:]]
sys.exit(cli.main())
"""


def _signal_at(tmp_path: Path, command: str, point: str, signame: str) -> tuple[int, str, Path]:
    """Run `driver COMMAND` (two photos, ``--json-out``) as HUNG_READ_OR_WRITE does, send it
    ``signame`` as its second photo is read (``point`` "read") or as its ``--json-out`` is
    written ("write"); its exit status, stderr and the ``--json-out`` path."""
    config = tmp_path / "face.yaml"
    config.write_text(FACE_CONFIG.format(timeout=600))
    script = tmp_path / "hung_read_or_write.py"
    script.write_text(HUNG_READ_OR_WRITE)
    marks = [tmp_path / name for name in ("reading", "writing")]
    out = tmp_path / "out" / f"{command}.json"
    out.parent.mkdir()
    other = str(FACES / "obama_2_congress_2009.jpg")
    if command == "attention":
        args = ["--json-out", str(out), FACE, other]
    else:
        pairs = tmp_path / "pairs.csv"
        pairs.write_text(f"file_x,file_y,same\n{FACE},{other},1\n")
        args = ["--json-out", str(out), "--pairs", str(pairs)]
    returncode, _, err = _signal_once_marked(
        [str(script), *map(str, marks), point, "driver", command, *args, "--config", str(config)],
        marks[0] if point == "read" else marks[1], signame, tmp_path, f"its {point}",
        start_s=180, end_s=180)
    return returncode, err, out


@pytest.mark.parametrize("command, signame, code", [("attention", "SIGTERM", 143),
                                                    ("attention", "SIGHUP", 129),
                                                    ("eval", "SIGTERM", 143),
                                                    ("eval", "SIGHUP", 129)])
def test_sigterm_or_sighup_among_attention_and_evals_photos_stops_them_as_the_others(
        tmp_path, command, signame, code):
    """R96: past their load, `driver attention` and `driver eval` ran outside any
    ``stop_signals`` block (R94 wrapped only identify's run: theirs holds the ``--json-out``
    write, which a block around the whole run took Ctrl-C and SIGHUP from): SIGTERM or SIGHUP
    while they read their photos ended them by the signal's default (exit -15 / -1). They stop
    as the others do now (exit 143 / 129, no traceback, no ``--json-out`` written). A real signal
    to a real process, its second photo's read hung."""
    status, err, out = _signal_at(tmp_path, command, "read", signame)
    assert status == code, (status, err[-2000:])
    assert "Traceback" not in err, err
    assert not any(out.parent.iterdir())


@pytest.mark.parametrize("command, signame, code", [("attention", "SIGINT", 130),
                                                    ("attention", "SIGHUP", 129),
                                                    ("eval", "SIGTERM", 143),
                                                    ("eval", "SIGINT", 130)])
def test_a_stop_while_attention_or_eval_writes_its_json_out_waits_for_the_write(
        tmp_path, command, signame, code):
    """R96: with attention's and eval's whole run in a ``stop_signals`` block, a stop that lands
    while ``--json-out`` is written still waits for it (R73): the nested block is the outer
    one's, holding all three stops (a new one took SIGTERM only, so Ctrl-C or SIGHUP there
    stopped the write midway, its temp file left). The file is whole, the command then stops."""
    from sense_perception.cli.driver import _is_attention_result, _is_eval_result

    status, err, out = _signal_at(tmp_path, command, "write", signame)
    assert status == code, (status, err[-2000:])
    assert "Traceback" not in err, err
    is_own = _is_attention_result if command == "attention" else _is_eval_result
    assert is_own(json.loads(out.read_text()))
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp file left
