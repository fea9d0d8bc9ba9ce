"""Suite-wide set-up of the tests (the ROS graph's own fixtures are in test/ros/conftest.py)."""
from __future__ import annotations

import inspect
import re
import signal
import warnings

import pytest
from support import LeftoverSignalState, check_grouped, restore_signal_state, signal_state


def pytest_configure(config: pytest.Config) -> None:
    """SIGHUP and SIGINT at their defaults, as in a terminal, whatever ignore the runner handed down.

    A runner that ignores SIGHUP (``nohup``, some CI services) passes the ignore to this process
    and to every command the tests start, and the commands keep an ignored SIGHUP ignored, as
    ``nohup`` asks (R89, R91): the tests of the stop a closed terminal's SIGHUP makes then got no
    stop at all (exit 0 where 129 was asserted), in-process and in the commands they start. The
    tests of ``nohup`` itself set the ignore they test."""
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    # A pytest-xdist worker starts with SIGINT ignored (its controller takes the terminal's
    # Ctrl-C), and every command a test starts would inherit the ignore: Ctrl-C is Python's own
    # KeyboardInterrupt again, as in a terminal.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _signal_state_restored(request: pytest.FixtureRequest):
    """Each test starts with the handlers and mask the run began with, and a test that leaves
    them changed is named (R96): the in-process stop tests (a signal sent to this process, as in
    test_faults_gallery.py) rely on them, and ``ray.init`` leaves its own SIGTERM handler
    (``sys.exit``) installed after ``ray.shutdown()``, for every later test file."""
    start = signal_state()
    yield
    left = restore_signal_state(start)
    if left:
        warnings.warn(LeftoverSignalState(f"{request.node.nodeid} left {'; '.join(left)}; "
                                          "restored"), stacklevel=2)


@pytest.fixture(scope="module", autouse=True)
def _module_signal_state_restored():
    """Each module ends with the handlers and mask it began with: a module fixture that starts Ray
    in this process (``ray.init`` leaves its SIGTERM handler, ``sys.exit``) is set up before each
    test records its own start, so the per-test restore kept Ray's handler for the worker's later
    modules (test_stops.py then found it in place of the default)."""
    start = signal_state()
    yield
    restore_signal_state(start)


#: Module fixtures every module has (this file's own, cheap): they make no xdist group.
_EVERY_MODULE = frozenset({"_module_signal_state_restored"})


# A test that starts Ray (a fleet run, `ray start`, the benchmarks' fleet section) shares the machine
# with Ray's own start-up files and may join a cluster another test started, so under pytest-xdist
# (`make test`: `--dist loadgroup`) all of them run one after another on one worker. Matched on
# the test's source and its fixtures' (parametrised cases included), erring towards the group.
_STARTS_RAY = re.compile(r"\bray\b|[\"']fleet[\"']|\bfleet\.|run_fleet|RAY_")


def _starts_ray(item: pytest.Item) -> bool:
    """Whether the test's code or a fixture of its own module names Ray or a fleet run (their
    docstrings left out, so a comment on Ray does not count)."""
    if item.path.name.startswith("test_fleet"):
        return True
    func = getattr(item, "obj", None)
    funcs = [func]
    info = getattr(item, "_fixtureinfo", None)
    module = getattr(func, "__module__", None)
    for defs in (info.name2fixturedefs.values() if info else ()):
        funcs.extend(d.func for d in defs if getattr(d.func, "__module__", None) == module)
    for code in funcs:
        try:
            source = inspect.getsource(code)
        except (OSError, TypeError):
            continue
        if _STARTS_RAY.search(source.replace(code.__doc__ or "\0", "")):
            return True
    return False


def _module_fixtures(item: pytest.Item) -> list[str]:
    """The module-scoped fixtures the test uses: each is built once per module and worker."""
    info = getattr(item, "_fixtureinfo", None)
    return sorted(name for name, defs in (info.name2fixturedefs.items() if info else ())
                  if defs and defs[-1].scope == "module" and name not in _EVERY_MODULE)


def _shared_fixture_groups(items: list[pytest.Item]) -> dict[pytest.Item, str]:
    """One pytest-xdist group per set of a module's tests joined by module-scoped fixtures.

    pytest-xdist hands out tests one by one, so two workers each built a module fixture that both
    ran tests of: the benchmarks' quick run (100 s) twice, a replay of the sample bag twice. Tests
    linked through any such fixture (a union over the module's fixtures) run on one worker; the
    module's other tests stay free."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(key: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    uses = {item: [(str(item.path), name) for name in _module_fixtures(item)] for item in items}
    for keys in uses.values():
        for key in keys[1:]:
            parent[root(key)] = root(keys[0])
    return {item: "module:" + "::".join(root(keys[0])) for item, keys in uses.items() if keys}


@pytest.hookimpl(wrapper=True)  # around pytest-xdist's hook, which reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]):
    """Put every test that starts Ray in the one ``ray`` group of pytest-xdist, and the tests that
    share a module-scoped fixture in a group of their own (:func:`_shared_fixture_groups`); such a
    group holding a test that starts Ray joins the ``ray`` group whole (its fixture built once).
    Then check that pytest-xdist took the groups (:func:`support.check_grouped`)."""
    shared = _shared_fixture_groups(items)
    ray = {item for item in items if _starts_ray(item)}
    ray_shared = {shared[item] for item in ray if item in shared}
    for item in items:
        if item in ray or shared.get(item) in ray_shared:
            item.add_marker(pytest.mark.xdist_group("ray"))
        elif item in shared:
            item.add_marker(pytest.mark.xdist_group(shared[item]))
    result = yield
    check_grouped(config, items)
    return result
