"""Texts a node puts on the DDS domain (``/rosout``, ``/diagnostics``, service answers) without
the paths that name a person.

Every participant of the domain reads them (SECURITY.md, out of scope: the graph), so they carry
the pseudonymous driver id and never a display name (P10); a path is personal data too: a home
folder is usually named after its user (``/home/alice``), and the gallery's and its key file's
paths say where the driver's biometric templates and their key lie. The domain gets a label for
each (``<gallery.path>``, ``~``), which keeps a fix hint readable (``chmod 600 <gallery.path>``);
the node's local log (Python logging, the process's standard error) keeps the full text (R93).
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Iterable, Sequence

#: Label of the gallery file (also the start of its ``.bak``, ``.lock`` and ``.images`` names).
GALLERY_LABEL = "<gallery.path>"
#: Label of the gallery's folder.
GALLERY_FOLDER_LABEL = "<gallery.path's folder>"
#: Label of the gallery key file.
KEY_FILE_LABEL = "<gallery.key_file>"
#: Label of the home folder, as a shell writes it.
HOME_LABEL = "~"

PathLabels = Sequence[tuple[str, str]]


def _forms(path: str) -> set[str]:
    """``path`` absolute and with its links resolved: an error may name either. A relative
    name as given is not one of them: it names no folder above the working one and is the
    setting's own value (a parameter every participant reads), and a one-word name
    (``gallery``) was taken out of every sentence that said the word (R97)."""
    forms = {os.path.abspath(path)}
    try:
        forms.add(os.path.realpath(path))
    except (OSError, ValueError):
        pass
    return {f for f in forms if f and f != os.sep}


def home_paths() -> list[tuple[str, str]]:
    """The home folder (``$HOME`` and the account's, which may differ) labelled ``~``."""
    homes = {os.path.expanduser("~"), os.environ.get("HOME", "")}
    try:
        import pwd

        homes.add(pwd.getpwuid(os.geteuid()).pw_dir)
    except (ImportError, KeyError):
        pass
    return [(form, HOME_LABEL) for home in homes if home for form in _forms(home)]


def gallery_paths(gallery_path: str, key_file: str) -> list[tuple[str, str]]:
    """The gallery file (``gallery_path``; "" = both default names, plain and encrypted), its
    folder and the key file (``key_file``; "" = none), each with its label."""
    from .gallery import default_gallery_path

    files = ([os.path.expanduser(gallery_path)] if gallery_path
             else [str(default_gallery_path(False)), str(default_gallery_path(True))])
    pairs = [(form, GALLERY_LABEL) for f in files for form in _forms(f)]
    pairs += [(form, GALLERY_FOLDER_LABEL) for f in files for form in _forms(os.path.dirname(
        os.path.abspath(f)))]
    if key_file:
        pairs += [(form, KEY_FILE_LABEL) for form in _forms(os.path.expanduser(key_file))]
    return pairs


def _constant(label: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: label


def redact_paths(text: str, paths: Iterable[tuple[str, str]]) -> str:
    """``text`` with each path of ``paths`` (path, label) replaced by its label, longest first
    (the gallery file before its folder, both before the home folder). A path counts only where
    the name it ends in ends too (``/home/al`` is not taken out of ``/home/alice``) and where it
    begins a path (a home ``/data`` is not taken out of ``/mnt/data``, which said ``/mnt~``,
    R97); a file's ``.bak`` and ``.lock`` names keep their suffix (``<gallery.path>.bak``)."""
    for path, label in sorted(set(paths), key=lambda p: -len(p[0])):
        if len(path) > 1:
            # (a function: a label is never read as a pattern's replacement escapes)
            text = re.sub(r"(?<![\w\-.~])" + re.escape(path) + r"(?![\w\-])", _constant(label),
                          text)
    return text


def redact_status(status: dict[str, Any], paths: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """A diagnostic status (:func:`~sense_perception.core.output.messages.diagnostic_status`)
    whose message and values went through :func:`redact_paths`: a node's, and a replay's played
    with ``--publish`` (R97)."""
    pairs = list(paths)
    return {**status, "message": redact_paths(str(status.get("message", "")), pairs),
            "values": [{"key": redact_paths(v["key"], pairs), "value": redact_paths(v["value"], pairs)}
                       for v in status.get("values", [])]}


__all__ = ["GALLERY_FOLDER_LABEL", "GALLERY_LABEL", "HOME_LABEL", "KEY_FILE_LABEL", "gallery_paths",
           "home_paths", "redact_paths", "redact_status"]
