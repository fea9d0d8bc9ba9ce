# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PY ?= python3
VENV := .venv
ROS_VENV := .venv-ros

.PHONY: demo test test-core test-ros bench ros-env venv clean

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

test-core: $(VENV)/.torch
	$(VENV)/bin/python -m pytest -m "not ros" test

test-ros: ros-env
	$(ROS_VENV)/bin/python -m pytest -m ros test

test: test-core test-ros

bench: $(VENV)/.torch
	$(VENV)/bin/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(ROS_VENV) .ros-build build *.egg-info demo_out
