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
#   3. the message packages vision_msgs, foxglove_msgs, tf2_msgs, autoware_perception_msgs and
#      tier4_perception_msgs (built in that order: tier4 uses autoware's): the project's own definitions
#      (sense_perception/interfaces/<package>/msg/*.msg, the single source of truth) built with
#      rosidl/cmake (tools/ros_env/CMakeLists.txt with tools/ros_env/<package>/package.xml) into real
#      typesupport installed in VENV, one stamp per package keyed on its definitions' hash.
# A changed stage rebuilds it and every later stage (a changed package only itself). Any failure
# exits non-zero with the reason.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="$ROOT/tools/ros_env"
REQS="$ENV_DIR/requirements-ros.txt"
CONSTRAINTS="$ENV_DIR/constraints-ros.txt"
MSG_PACKAGES=(vision_msgs foxglove_msgs tf2_msgs autoware_perception_msgs tier4_perception_msgs)  # in build order
msg_dir() { echo "$ROOT/sense_perception/interfaces/$1/msg"; }
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
VENV_TAG="$(printf %s "$VENV" | sha256sum | cut -c1-8)"  # one build dir per venv and package
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
for f in "$REQS" "$CONSTRAINTS" "$ENV_DIR/CMakeLists.txt"; do
  [[ -f "$f" ]] || die "missing $f (part of the repository; restore it with git)"
done
for pkg in "${MSG_PACKAGES[@]}"; do
  [[ -f "$ENV_DIR/$pkg/package.xml" ]] || die "missing $ENV_DIR/$pkg/package.xml (part of the repository; restore it with git)"
  compgen -G "$(msg_dir "$pkg")/*.msg" >/dev/null || die "no .msg files in $(msg_dir "$pkg")"
done

hash_of() { cat "$@" | sha256sum | cut -c1-16; }
# Stage keys chain: a new venv (stage 1) redoes everything; the project (stage 2) depends on setup.py;
# each message package (stage 3) on its definitions and the numpy it compiles against, not on setup.py.
KEY1="$(hash_of "${BASH_SOURCE[0]}" "$REQS" "$CONSTRAINTS")-py$PYVER"
KEY2="$KEY1-$(hash_of "$ROOT/setup.py")"
msgs_hash() {  # PACKAGE: names and contents, so a renamed or deleted .msg changes the key too
  local f dir
  dir="$(msg_dir "$1")"
  for f in $(cd "$dir" && LC_ALL=C ls -- *.msg); do echo "== $f"; cat "$dir/$f"; done \
    | cat - "$ENV_DIR/$1/package.xml" "$ENV_DIR/CMakeLists.txt" | sha256sum | cut -c1-16
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

# ---------------------------------------------------------------- stage 3: message packages
NUMPY_VERSION="$("$VENV/bin/python" -c 'import numpy; print(numpy.__version__)')" \
  || die "numpy is missing from $VENV"
SITE="$VENV/lib/python$PYVER/site-packages"
build_msgs() {  # PACKAGE: build the project's definitions of PACKAGE into VENV
  local pkg="$1" build_dir="$ROOT/.ros-build/$1-$VENV_TAG" ros_ld_path jobs
  log "stage 3/3: building $pkg from $(msg_dir "$pkg")"
  rm -f "$VENV/.stamp-msgs-$pkg"
  # Remove a previous build's install so a deleted .msg leaves nothing behind.
  rm -rf "${SITE:?}/$pkg" "$VENV/include/$pkg" "$VENV/share/$pkg" \
    "$VENV/share/ament_index/resource_index/packages/$pkg" "$VENV"/lib/lib"$pkg"__*
  find "$VENV/share/ament_index" -name "$pkg" -delete 2>/dev/null || true
  rm -rf "$build_dir"
  mkdir -p "$build_dir/src/msg"
  cp "$ENV_DIR/$pkg/package.xml" "$ENV_DIR/CMakeLists.txt" "$build_dir/src/"
  cp "$(msg_dir "$pkg")"/*.msg "$build_dir/src/msg/"
  # The venv's python re-executes itself with LD_LIBRARY_PATH naming the wheels' library dirs
  # (ros-wheels-bootstrapper); cmake, the generators and the linker need the same path.
  ros_ld_path="$("$VENV/bin/python" -c 'import os; print(os.environ.get("LD_LIBRARY_PATH", ""))')"
  [[ -n "$ros_ld_path" ]] || die "the venv's python did not set LD_LIBRARY_PATH (ros-wheels-bootstrapper missing?)"
  jobs="$(nproc 2>/dev/null || echo 2)"
  (
    export LD_LIBRARY_PATH="$ros_ld_path" AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV"
    export PATH="$VENV/bin:$PATH" PYTHONDONTWRITEBYTECODE=1
    cmake -S "$build_dir/src" -B "$build_dir/build" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$VENV/bin/python" -DPython3_FIND_VIRTUALENV=ONLY \
      >"$build_dir/cmake-configure.log" 2>&1 \
      || { tail -40 "$build_dir/cmake-configure.log" >&2; exit 1; }
    cmake --build "$build_dir/build" -j"$jobs" >"$build_dir/cmake-build.log" 2>&1 \
      || { grep -E -B2 -A8 "error|Error" "$build_dir/cmake-build.log" | tail -60 >&2; exit 1; }
    cmake --install "$build_dir/build" >"$build_dir/cmake-install.log" 2>&1 \
      || { tail -40 "$build_dir/cmake-install.log" >&2; exit 1; }
  ) || die "building $pkg failed (logs in $build_dir)"
}
for pkg in "${MSG_PACKAGES[@]}"; do
  KEY3="$KEY1-$(msgs_hash "$pkg")-numpy$NUMPY_VERSION"
  if ! stamp_ok "msgs-$pkg" "$KEY3"; then
    build_msgs "$pkg"
    echo "$KEY3" > "$VENV/.stamp-msgs-$pkg"
    log "stage 3/3: $pkg done ($((SECONDS - START)) s)"
  fi
done

# ---------------------------------------------------------------- check (every run; ~1 s)
# Real typesupport round trip of every project message type, plus the runtime the nodes need.
AMENT_PREFIX_PATH="$VENV" "$VENV/bin/python" - "$ROOT/sense_perception/interfaces" "${MSG_PACKAGES[@]}" <<'EOF' || die "the environment in $VENV does not work (see above); delete it and re-run"
import importlib, pathlib, sys
import rclpy, rclpy.lifecycle  # noqa: F401  (lifecycle needs rcl_lifecycle)
from rclpy.serialization import deserialize_message, serialize_message
import diagnostic_msgs.msg, sensor_msgs.msg, std_srvs.srv, lifecycle_msgs.srv  # noqa: F401
import sense_perception  # noqa: F401
for package in sys.argv[2:]:
    msgs = importlib.import_module(f"{package}.msg")
    for f in sorted((pathlib.Path(sys.argv[1]) / package / "msg").glob("*.msg")):
        cls = getattr(msgs, f.stem)
        assert deserialize_message(serialize_message(cls()), cls) == cls(), f"{package}/{f.stem}"
EOF
log "ok: $VENV ready ($((SECONDS - START)) s)"
