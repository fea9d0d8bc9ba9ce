#!/usr/bin/env bash
# Run the non-ROS tests (or the pytest arguments given) on an emulated AVX2-only x86-64 CPU.
#
#   tools/test_on_avx2.sh                       # the whole non-ROS suite (about an hour)
#   tools/test_on_avx2.sh test/test_image_view.py test/test_detector.py
#
# OpenCV, numpy (OpenBLAS) and onnxruntime (MLAS) choose their kernels by CPU at run time, so a
# test suite that passes on an AVX-512 machine may still fail on an AVX2-only one where two code
# paths round differently. qemu-user (Debian: apt-get install qemu-user) runs this venv's Python
# as a Haswell CPU: AVX2 and FMA, no AVX-512 (QEMU's TCG has no AVX-512), so every library takes
# its AVX2 kernels. It is 30-60x slower than the host; not part of `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v qemu-x86_64 >/dev/null || { echo "test_on_avx2: qemu-x86_64 not found; install it (Debian: apt-get install qemu-user)" >&2; exit 2; }
[[ -x .venv/bin/python ]] || { echo "test_on_avx2: .venv missing; run make venv first" >&2; exit 2; }
# Haswell without the system-level features TCG does not model (they only produce warnings).
CPU="Haswell-v4,-pcid,-x2apic,-tsc-deadline,-invpcid,-spec-ctrl"
qemu-x86_64 -cpu "$CPU" .venv/bin/python -c 'import cv2
import sys; line = cv2.getCPUFeaturesLine(); print("OpenCV CPU features:", line, file=sys.stderr)
assert "AVX512-SKX?" in line or "AVX512" not in line, "the emulated CPU still reports AVX-512"'
if [[ $# -eq 0 ]]; then set -- -m "not ros" test; fi
# Tests that only spawn native subprocesses (pip, colcon, the CLI) gain nothing from emulation.
exec qemu-x86_64 -cpu "$CPU" .venv/bin/python -m pytest -p no:cacheprovider \
  --deselect test/test_packaging.py --deselect test/test_colcon_build.py \
  --deselect test/test_cli_messages.py::test_detect_prints_no_info_lines_unless_asked "$@"
