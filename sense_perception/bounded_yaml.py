"""Bounded YAML: a YAML file that may be hostile parsed without hanging or exhausting memory.

Shared by the config loader (``--config`` files) and the replay's ``metadata.yaml`` reader. The
bounds are those the config loader was given against hostile files: at most :data:`MAX_YAML_BYTES`
read (PyYAML's pure parser takes about a minute on 7 MB), a FIFO or device refused unread
(:func:`~.fileio.read_regular_file`), and the parsed document walked once, counting through YAML
aliases, before anything else walks it: a few hundred bytes of aliases ("billion laughs") expand to
millions of nodes, and YAML nested thousands of levels deep ends PyYAML in a RecursionError.
"""
from __future__ import annotations

from typing import Any

import yaml

#: The most bytes a YAML input file is read to (config files and bag metadata are a few kB).
MAX_YAML_BYTES = 1 << 20


class YamlLimitError(ValueError):
    """A YAML document over a bound: ``kind`` is ``"depth"`` (nested beyond the bound),
    ``"recursion"`` (nested beyond what the parser can recurse: thousands of levels) or
    ``"entries"`` (expands, through aliases, to too many nodes)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def check_expansion(doc: Any, max_entries: int, max_depth: int,
                    containers: tuple[type, ...] = (dict,)) -> None:
    """Refuse ``doc`` if its ``containers`` (mappings; lists too where given), counted through
    aliases, hold more than ``max_entries`` entries or nest more than ``max_depth`` levels.

    The walk stops at the first bound crossed, so a bomb costs at most ``max_entries`` steps.

    Raises:
        YamlLimitError: the bound crossed.
    """
    entries = 0
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, containers):  # a scalar, or a list where only mappings count
            continue
        if depth > max_depth:
            raise YamlLimitError("depth", f"nested more than {max_depth} levels deep")
        values: Any = node.values() if isinstance(node, dict) else node
        entries += len(values)
        if entries > max_entries:
            raise YamlLimitError("entries", f"expands to more than {max_entries} entries "
                                 "(YAML aliases repeating mappings or lists?)")
        stack.extend((value, depth + 1) for value in values)


def parse_bounded(text: str, loader: type, max_entries: int, max_depth: int,
                  containers: tuple[type, ...] = (dict,)) -> Any:
    """The YAML document of ``text`` parsed with ``loader`` and checked by
    :func:`check_expansion`; YAML nested beyond what the parser can recurse is a
    :class:`YamlLimitError` of kind ``"recursion"`` instead of a RecursionError.

    Raises:
        yaml.YAMLError: not valid YAML.
        YamlLimitError: over a bound.
    """
    try:
        doc = yaml.load(text, Loader=loader)
    except RecursionError:
        raise YamlLimitError("recursion", "YAML nested too deeply (thousands of levels)") from None
    check_expansion(doc, max_entries, max_depth, containers)
    return doc


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: the problem and where (PyYAML's text spans several lines)."""
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc)
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())
