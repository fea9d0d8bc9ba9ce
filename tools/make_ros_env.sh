#!/usr/bin/env bash
# Build the ROS 2 Jazzy test environment VENV (default .venv-ros) from PyPI wheels, with no ROS install.
#
#   tools/make_ros_env.sh [VENV]          build or refresh VENV (fast no-op when up to date)
#   tools/make_ros_env.sh --freeze VENV   print VENV's wheel set in constraints-ros.txt format
#
# Needs only python3.11 (with its headers), gcc/g++ and cmake >= 3.16 (Debian 12: build-essential cmake).
# Stages, each cached by a stamp file in VENV keyed on the hash of what it depends on:
#   1. venv + the pinned ros-jazzy-* wheels (tools/ros_env/requirements-ros.txt + constraints-ros.txt),
#      then the wheels' *.cmake files are rewritten to this interpreter's include dirs (the wheels
#      hard-code their build machine's /opt/python paths);
#   2. the project itself: pip install -e '.[test]';
#   3. vision_msgs: the project's own definitions (sense_perception/interfaces/vision_msgs/msg/*.msg,
#      the single source of truth) built with rosidl/cmake into real typesupport installed in VENV.
# A changed stage rebuilds it and every later stage. Any failure exits non-zero with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="$ROOT/tools/ros_env"
REQS="$ENV_DIR/requirements-ros.txt"
CONSTRAINTS="$ENV_DIR/constraints-ros.txt"
MSG_DIR="$ROOT/sense_perception/interfaces/vision_msgs/msg"
PYTHON="${ROS_ENV_PYTHON:-python3.11}"

die() { echo "make_ros_env: ERROR: $*" >&2; exit 1; }
log() { echo "make_ros_env: $*" >&2; }

if [[ "${1:-}" == "--freeze" ]]; then
  [[ -x "${2:-}/bin/python" ]] || die "--freeze needs an existing venv: $0 --freeze VENV"
  # Only real distributions (*.dist-info): the ros-* wheels also install egg-info stubs of their
  # Python packages that pip cannot fetch by those names.
  exec "$2/bin/python" - <<'EOF'
import importlib.metadata as md
rows = sorted({f"{d.metadata['Name']}=={d.version}" for d in md.distributions()
               if str(getattr(d, "_path", "")).endswith(".dist-info")
               and d.metadata["Name"].lower() not in ("pip", "setuptools", "wheel", "sense-perception",
                                                      "sense_perception")}, key=str.lower)
print("\n".join(rows))
EOF
fi

VENV_ARG="${1:-.venv-ros}"
case "$VENV_ARG" in /*) VENV="$VENV_ARG" ;; *) VENV="$PWD/$VENV_ARG" ;; esac
BUILD_DIR="$ROOT/.ros-build/vision_msgs-$(printf %s "$VENV" | sha256sum | cut -c1-8)"  # one per venv
START=$SECONDS

# ---------------------------------------------------------------- prerequisites (fail loudly)
command -v "$PYTHON" >/dev/null || die "$PYTHON not found; the ros-jazzy-* wheels are built for CPython 3.11 \
(install python3.11 and python3.11-venv/-dev, or set ROS_ENV_PYTHON to a 3.11 interpreter)"
PYVER="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
[[ "$PYVER" == "3.11" ]] || die "$PYTHON is Python $PYVER; the ros-jazzy-* wheels need CPython 3.11 \
(set ROS_ENV_PYTHON to a python3.11)"
PY_INCLUDE="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
[[ -f "$PY_INCLUDE/Python.h" ]] || die "Python.h not found in $PY_INCLUDE; install the headers (Debian: apt-get install python3.11-dev)"
for tool in gcc g++ cmake; do
  command -v "$tool" >/dev/null || die "$tool not found; install it (Debian: apt-get install build-essential cmake)"
done
for f in "$REQS" "$CONSTRAINTS" "$ENV_DIR/vision_msgs/package.xml" "$ENV_DIR/vision_msgs/CMakeLists.txt"; do
  [[ -f "$f" ]] || die "missing $f (part of the repository; restore it with git)"
done
compgen -G "$MSG_DIR/*.msg" >/dev/null || die "no .msg files in $MSG_DIR"

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
# Stage keys chain: a new venv (stage 1) redoes everything; the project (stage 2) depends on setup.py;
# vision_msgs (stage 3) on the definitions and the numpy it compiles against, not on setup.py.
KEY1="$(hash_of "${BASH_SOURCE[0]}" "$REQS" "$CONSTRAINTS")-py$PYVER"
KEY2="$KEY1-$(hash_of "$ROOT/setup.py")"
msgs_hash() {  # names and contents, so a renamed or deleted .msg changes the key too
  local f
  for f in $(cd "$MSG_DIR" && LC_ALL=C ls -- *.msg); do echo "== $f"; cat "$MSG_DIR/$f"; done \
    | cat - "$ENV_DIR/vision_msgs/package.xml" "$ENV_DIR/vision_msgs/CMakeLists.txt" | sha256sum | cut -c1-16
}
stamp_ok() { [[ -f "$VENV/.stamp-$1" && "$(cat "$VENV/.stamp-$1")" == "$2" ]]; }

PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# ---------------------------------------------------------------- stage 1: venv + ROS wheels
if ! stamp_ok ros "$KEY1" || [[ ! -x "$VENV/bin/python" ]]; then
  log "stage 1/3: creating $VENV with the pinned ros-jazzy-* wheels"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "${PIP[@]}" install -r "$REQS" -c "$CONSTRAINTS" 2> >(grep -v "^WARNING: Location" >&2) \
    || die "pip could not install the ROS wheels (see above)"
  # Rewrite the wheel build machine's Python/numpy include dirs in the exported cmake files.
  "$VENV/bin/python" - "$VENV" <<'EOF' || die "could not rewrite the wheels' cmake files"
import pathlib, re, sys, sysconfig
import numpy
venv = pathlib.Path(sys.argv[1])
py_inc = sysconfig.get_paths()["include"]
np_inc = numpy.get_include()
pattern = re.compile(r"/opt/python/cp311-cp311/(?:include/python3\.11|lib/python3\.11/site-packages/numpy/_core/include)")
changed = 0
for path in venv.rglob("*.cmake"):
    text = path.read_text(errors="surrogateescape")
    if "/opt/python" not in text:
        continue
    new = pattern.sub(lambda m: py_inc if m.group(0).endswith("python3.11") else np_inc, text)
    if "/opt/python" in new:
        sys.exit(f"{path} still names /opt/python after the rewrite: {new[new.index('/opt/python'):][:120]}")
    path.write_text(new, errors="surrogateescape")
    changed += 1
print(f"make_ros_env: rewrote include dirs in {changed} cmake files", file=sys.stderr)
EOF
  echo "$KEY1" > "$VENV/.stamp-ros"
  log "stage 1/3 done ($((SECONDS - START)) s)"
fi

# ---------------------------------------------------------------- stage 2: the project
if ! stamp_ok project "$KEY2"; then
  log "stage 2/3: installing sense_perception (editable, with test extras) into $VENV"
  rm -f "$VENV/.stamp-project"
  "${PIP[@]}" install -e "$ROOT[test]" -c "$CONSTRAINTS" 2> >(grep -v "^WARNING: Location" >&2) \
    || die "pip could not install the project into $VENV (see above)"
  echo "$KEY2" > "$VENV/.stamp-project"
  log "stage 2/3 done ($((SECONDS - START)) s)"
fi

# ---------------------------------------------------------------- stage 3: vision_msgs
NUMPY_VERSION="$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')" \
  || die "numpy is missing from $VENV"
KEY3="$KEY1-$(msgs_hash)-numpy$NUMPY_VERSION"
if ! stamp_ok msgs "$KEY3"; then
  log "stage 3/3: building vision_msgs from $MSG_DIR"
  rm -f "$VENV/.stamp-msgs"
  SITE="$VENV/lib/python$PYVER/site-packages"
  # Remove a previous build's install so a deleted .msg leaves nothing behind.
  rm -rf "$SITE/vision_msgs" "$VENV/include/vision_msgs" "$VENV/share/vision_msgs" \
    "$VENV/share/ament_index/resource_index/packages/vision_msgs" "$VENV"/lib/libvision_msgs__*
  find "$VENV/share/ament_index" -name vision_msgs -delete 2>/dev/null || true
  rm -rf "$BUILD_DIR"
  mkdir -p "$BUILD_DIR/src/msg"
  cp "$ENV_DIR/vision_msgs/package.xml" "$ENV_DIR/vision_msgs/CMakeLists.txt" "$BUILD_DIR/src/"
  cp "$MSG_DIR"/*.msg "$BUILD_DIR/src/msg/"
  # The venv's python re-executes itself with LD_LIBRARY_PATH naming the wheels' library dirs
  # (ros-wheels-bootstrapper); cmake, the generators and the linker need the same path.
  ROS_LD_PATH="$("$VENV/bin/python" -c 'import os; print(os.environ.get("LD_LIBRARY_PATH", ""))')"
  [[ -n "$ROS_LD_PATH" ]] || die "the venv's python did not set LD_LIBRARY_PATH (ros-wheels-bootstrapper missing?)"
  JOBS="$(nproc 2>/dev/null || echo 2)"
  (
    export LD_LIBRARY_PATH="$ROS_LD_PATH" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export PATH="$VENV/bin:$PATH" PYTHONDONTWRITEBYTECODE=1
    cmake -S "$BUILD_DIR/src" -B "$BUILD_DIR/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_FIND_VIRTUALENV=ONLY \
      >"$BUILD_DIR/cmake-configure.log" 2>&1 \
      || { tail -40 "$BUILD_DIR/cmake-configure.log" >&2; exit 1; }
    cmake --build "$BUILD_DIR/build" -j"$JOBS" >"$BUILD_DIR/cmake-build.log" 2>&1 \
      || { grep -E -B2 -A8 "error|Error" "$BUILD_DIR/cmake-build.log" | tail -60 >&2; exit 1; }
    cmake --install "$BUILD_DIR/build" >"$BUILD_DIR/cmake-install.log" 2>&1 \
      || { tail -40 "$BUILD_DIR/cmake-install.log" >&2; exit 1; }
  ) || die "building vision_msgs failed (logs in $BUILD_DIR)"
  echo "$KEY3" > "$VENV/.stamp-msgs"
fi

# ---------------------------------------------------------------- check (every run; ~1 s)
# Real typesupport round trip of every project message type, plus the runtime the nodes need.
AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" - "$MSG_DIR" <<'EOF' || die "the environment in $VENV does not work (see above); delete it and re-run"
import importlib, pathlib, sys
import rclpy, rclpy.lifecycle  # noqa: F401  (lifecycle needs rcl_lifecycle)
from rclpy.serialization import deserialize_message, serialize_message
import diagnostic_msgs.msg, sensor_msgs.msg, std_srvs.srv, lifecycle_msgs.srv  # noqa: F401
import sense_perception  # noqa: F401
msgs = importlib.import_module("vision_msgs.msg")
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.msg")):
    cls = getattr(msgs, f.stem)
    assert deserialize_message(serialize_message(cls()), cls) == cls(), f.stem
EOF
log "ok: $VENV ready ($((SECONDS - START)) s)"
