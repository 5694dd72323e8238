"""Path arithmetic shared by the compile side and the launcher: no import but the
standard library's, so the plan cache's fast start can use it."""

from __future__ import annotations


def path_under(path: str, top: str) -> bool:
    """Whether ``path`` is ``top`` or lies beneath it (both resolved)."""
    return path == top or top == "/" or path.startswith(top.rstrip("/") + "/")
