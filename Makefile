# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
ROS_VENV := .venv-ros

.PHONY: demo test test-fast test-core test-ros lint bench ros-env ros-env-beside venv clean golden

# setuptools >= 70.1 builds wheels by itself (test_packaging: `pip wheel --no-build-isolation`); a
# fresh Python 3.11 venv has 65.5, which needs the separate `wheel` package for that; colcon-core
# (a test extra) wants < 80.
$(VENV)/.installed: setup.py
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip 'setuptools>=70.1,<80'
	$(VENV)/bin/pip install -q -e '.[test,fleet]'
	touch $@

# CPU torch, only for the test of the GPU pre-processing math on a CPU torch device; the demo and
# the package itself never need it. (On these machines torch==2.13.0 is a CPU wheel on disk.)
$(VENV)/.torch: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[torch]'
	touch $@

venv: $(VENV)/.installed

ros-env: $(VENV)/.installed
	bash tools/make_ros_env.sh $(ROS_VENV)

demo: venv
	$(VENV)/bin/sense-perception replay sense_perception/data/sample_bag --out demo_out --force --cabin /camera/cabin/image_raw/compressed --video --config sense_perception/data/sample_bag/sample.yaml

# Static gates: pyflakes (F) and bugbear (B) rules, and mypy on the package (its settings are in
# setup.cfg); both at 0 errors. test-core runs them first, so `make test` and CI do.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check --select F,B sense_perception test tools benchmarks
	$(VENV)/bin/mypy sense_perception

# -rs: every skipped test prints its reason. A serial run kept about 1.1 of CI's 2 cores busy (the
# tests wait on subprocesses and signals): the core tests run on two pytest-xdist workers
# (XDIST="-n 0" for one process); the tests that start Ray run one after another
# (test/conftest.py). The ROS graph tests stay in one process (ROS_XDIST): they bound how fast a
# node reacts (warm-up, stall, clock), which a second worker on 2 cores starved (docs/testing.md).
XDIST ?= -n 2 --dist loadgroup
ROS_XDIST ?= -n 0
test-core: lint $(VENV)/.torch
	$(VENV)/bin/python -m pytest -rs --durations=15 $(XDIST) -m "not ros" test

test-ros: ros-env
	$(ROS_VENV)/bin/python -m pytest -rs --durations=10 $(ROS_XDIST) -m ros test

# The inner loop: the core tests without the ROS graph and without those marked slow (whole-set
# evaluations, packaging, benchmarks). `make test` stays the full suite.
test-fast: $(VENV)/.torch
	$(VENV)/bin/python -m pytest -rs $(XDIST) -m "not ros and not slow" test

# The ROS environment (about 5 minutes, mostly compiling the message typesupport) builds beside
# the core tests, at a lower priority (nice) so that it takes only the CPU they leave idle while
# they wait on subprocesses, Ray and signals; its output goes to a log (printed on a failure), so
# the tests' progress stays readable. The ROS tests then run alone (ROS_XDIST above).
ROS_ENV_LOG := .ros-build/make_ros_env.log
test:
	$(MAKE) --no-print-directory -j3 test-core ros-env-beside
	$(MAKE) --no-print-directory test-ros

ros-env-beside: $(VENV)/.installed
	@mkdir -p $(dir $(ROS_ENV_LOG))
	@echo "building $(ROS_VENV) beside the core tests (log: $(ROS_ENV_LOG))"
	@nice -n 10 bash tools/make_ros_env.sh $(ROS_VENV) > $(ROS_ENV_LOG) 2>&1 \
		|| { tail -40 $(ROS_ENV_LOG); echo "building $(ROS_VENV) failed (log: $(ROS_ENV_LOG))"; exit 1; }
	@tail -1 $(ROS_ENV_LOG)

# Regenerate test/data/golden_replay.json, the sample bag's replay outputs that test_replay.py
# compares against (tolerances in test/golden_replay.py). Run it after a deliberate change of the
# outputs, and review the diff.
golden: venv
	$(VENV)/bin/python test/golden_replay.py

bench: $(VENV)/.torch
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(ROS_VENV) .ros-build build *.egg-info demo_out
