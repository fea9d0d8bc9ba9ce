"""Every library the package imports is one its packaging declares, and the docs name them.

setup.py's ``install_requires`` (and extras) and package.xml's ``exec_depend`` are what an install
brings; a module the package imports but neither declares works only while another package
happens to pull it in (Pillow came with matplotlib; ``backports.zstd`` and ``lz4`` with rosbags
0.11.9, where rosbags 0.11.0, which ``rosbags>=0.11`` allows, brings ``zstandard`` instead, and
every zstd-compressed bag failed to read with an ImportError). Read with ``ast``: nothing is
imported or installed.
"""
from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sense_perception"

# Import name -> distribution name, where the two differ.
DISTRIBUTION = {"PIL": "pillow", "cv2": "opencv-python-headless", "yaml": "pyyaml",
                "backports": "backports-zstd"}
# Standard library modules newer than the Python running the tests (imported under a guard).
NEWER_STDLIB = {"compression"}  # Python 3.14: compression.zstd


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    return _norm(re.split(r"[<>=!~;\[ ]", req, maxsplit=1)[0])


def setup_requirements() -> tuple[list[str], dict[str, list[str]]]:
    """(install_requires, extras_require) of setup.py, as written there."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    names = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}

    def strings(node: ast.expr) -> list[str]:
        out: list[str] = []
        for item in node.elts:  # type: ignore[attr-defined]
            if isinstance(item, ast.Starred):
                out += strings(names[item.value.id])  # type: ignore[attr-defined]
            else:
                out.append(ast.literal_eval(item))
        return out

    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: k.value for k in call.keywords}
    extras = {ast.literal_eval(k): strings(v)
              for k, v in zip(kw["extras_require"].keys, kw["extras_require"].values, strict=True)}  # type: ignore[attr-defined]
    return strings(kw["install_requires"]), extras


def ros_dependencies() -> set[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return {e.text.strip() for e in root.iter() if e.tag in ("exec_depend", "depend") and e.text}


def imported_modules() -> dict[str, str]:
    """Top-level third-party modules the package imports -> one file importing each."""
    found: dict[str, str] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in NEWER_STDLIB \
                        and top != "sense_perception":
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_every_imported_library_is_declared() -> None:
    install, extras = setup_requirements()
    declared = {_requirement_name(r) for r in install + [r for e in extras.values() for r in e]}
    ros = ros_dependencies()
    missing = {module: where for module, where in imported_modules().items()
               if _norm(DISTRIBUTION.get(module, module)) not in declared and module not in ros}
    assert not missing, ("imported but declared neither in setup.py (install_requires or an extra) "
                         f"nor in package.xml (exec_depend): {missing}")


def test_the_workspace_install_line_and_the_library_list_name_every_requirement() -> None:
    """docs/ros2-nodes.md's pip line is install_requires for a colcon workspace; docs/architecture.md
    says what each library does."""
    install, _ = setup_requirements()
    nodes = (REPO / "docs" / "ros2-nodes.md").read_text(encoding="utf-8")
    pip = re.search(r"pip install numpy(?:[^\n\\]|\\\n)*", nodes)
    assert pip, "docs/ros2-nodes.md lost its pip line"
    listed = {_requirement_name(word) for word in pip.group(0).replace("\\", " ").split()[2:]}
    libraries = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = {_norm(m) for m in re.findall(r"\*\*([^*]+)\*\*", libraries)}
    for req in install:
        name = _requirement_name(req)
        assert name in listed, f"{name} missing from docs/ros2-nodes.md's pip install line"
        assert name in named, f"{name} missing from docs/architecture.md's libraries"
