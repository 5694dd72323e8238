"""Running a function in a forked child, which may restrict itself freely.

Two ways back to the test: the child's exit status (``exit_status``), or a JSON
reply through a pipe (``json_reply``). The child never returns into pytest.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from typing import Any


def exit_status(fn: Callable[[], int], *, on_error: int = 98) -> int:
    """Fork; the child exits with ``fn()`` (``on_error`` if it raises). Returns
    the child's exit status as ``os.waitstatus_to_exitcode`` gives it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = on_error
        try:
            code = fn()
        except BaseException as exc:  # report through the exit code only
            os.write(2, f"child error: {exc!r}\n".encode())
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def json_reply(fn: Callable[[], Any]) -> tuple[int, dict[str, Any]]:
    """Fork; the child sends ``{"ok": fn()}``, or ``{"raised": traceback}`` and
    exits 3. Returns the raw wait status and the reply (``{}`` when none came)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 0
        try:
            os.close(r)
            reply = {"ok": fn()}
        except BaseException:  # report, never return into pytest
            reply, code = {"raised": traceback.format_exc()}, 3
        try:
            os.write(w, json.dumps(reply).encode())
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return status, json.loads(b"".join(chunks) or b"{}")
