"""Where this package keeps its per-user caches (the TensorRT engines, the folded face model)."""
from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/sense_perception/<parts>``, or ``~/.cache/...`` when it is unset or
    empty (the XDG base-directory rule), resolved when called: a user or a test that moves the
    cache moves every cache of the package, not only the ones read after the import."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "sense_perception", *parts)
