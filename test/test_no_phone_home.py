"""Nothing of the package's start-up leaves the vehicle or writes outside its own files."""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys, threading
from pathlib import Path
from sense_perception.core.runtime.openvino_session import _core, openvino_available
import onnxruntime
assert openvino_available()
_core()  # the plugin the detector's OpenVINO models run on
model = sorted(Path("MODELS").glob("*.onnx"))[0]
onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
print(sorted(m for m in sys.modules if m.startswith(("openvino_telemetry", "openvino.tools.ovc"))))
others = [t for t in threading.enumerate() if t is not threading.current_thread()]
print(sorted(t.name for t in others if not t.daemon))
"""


def test_the_runtimes_load_without_their_telemetry(tmp_path):
    # onnxruntime 1.32 starts Microsoft's 1DS telemetry at import unless ORT_DISABLE_TELEMETRY=1 is
    # set by then: a device id and an offline event store (1 MB in six hours of tests here) under
    # ~/.cache/Microsoft, uploaded (OS, executable path, sessions, models) when it can reach out.
    # `import openvino` imported its conversion tools, whose import starts Intel's telemetry with
    # consent assumed when no opt-out file exists: it wrote a client id to ~/intel and queued a
    # Google Analytics event on a (non-daemon) thread of its own at every start of a node, a replay
    # or an eval, and that thread held each node's stop for 2 s ("a callback was still running").
    # Not in CI (CI=true turns it off), so the probe runs without that variable.
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "TF_BUILD", "JENKINS_URL", "GITHUB_ACTIONS", "ORT_DISABLE_TELEMETRY")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(ROOT))
    probe = PROBE.replace("MODELS", str(ROOT / "sense_perception" / "models"))
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    modules, threads = out.stdout.splitlines()[-2:]
    assert modules == "[]", modules
    assert threads == "[]", threads
    assert not (tmp_path / "intel").exists(), sorted(p.name for p in (tmp_path / "intel").iterdir())
    assert not (tmp_path / ".cache" / "Microsoft").exists(), sorted(
        str(p.relative_to(tmp_path)) for p in (tmp_path / ".cache").rglob("*"))


def test_a_user_who_turns_onnxruntime_telemetry_on_keeps_it(monkeypatch):
    from sense_perception import no_telemetry

    monkeypatch.setenv(no_telemetry.ORT_VARIABLE, "0")
    no_telemetry.keep_telemetry_off()
    assert os.environ[no_telemetry.ORT_VARIABLE] == "0"
    monkeypatch.delenv(no_telemetry.ORT_VARIABLE)
    no_telemetry.keep_telemetry_off()
    assert os.environ[no_telemetry.ORT_VARIABLE] == "1"
    monkeypatch.setenv(no_telemetry.ORT_VARIABLE, "")  # onnxruntime reads empty as "on"
    no_telemetry.keep_telemetry_off()
    assert os.environ[no_telemetry.ORT_VARIABLE] == "1"


def test_the_conversion_tools_stay_importable_for_whoever_asks():
    # The block lasts only while openvino itself is imported: a tool that wants convert_model
    # (and, with it, Intel's telemetry) can still import it.
    import importlib.util

    from sense_perception.core.runtime.openvino_session import import_openvino

    import_openvino()
    assert sys.modules.get("openvino.tools.ovc", "absent") is not None
    assert importlib.util.find_spec("openvino.tools.ovc") is not None
