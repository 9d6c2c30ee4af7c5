"""Name an argument by its source text, for errors raised where no parameter path is known.

At apply time params are plain dicts: an array does not know its path. When ``validate``
fails there, the message quotes the expression the caller passed (``params["weights"]``)
and where the call is. This runs only on the error path.
"""

from __future__ import annotations

import ast
import inspect
import linecache
from types import FrameType


def describe_call_argument(frame: FrameType, index: int = 0) -> str:
    """```expr``` (in ``function``, ``file:line``) for argument ``index`` of the call running in ``frame``."""
    code = frame.f_code
    where = f"in `{code.co_name}`, {code.co_filename}:{frame.f_lineno}"
    expression = _argument_source(frame, index)
    if expression is None:
        return f"the array passed to validate ({where})"
    return f"`{expression}` ({where})"


def _argument_source(frame: FrameType, index: int) -> str | None:
    code = frame.f_code
    positions = inspect.getframeinfo(frame, context=0).positions  # of the instruction running in frame
    if positions is None:
        return None
    start, end, col, end_col = positions
    if start is None or end is None or col is None or end_col is None:
        return None
    lines = [linecache.getline(code.co_filename, n) for n in range(start, end + 1)]
    if not all(lines):
        return None
    lines[-1] = lines[-1][:end_col]
    lines[0] = lines[0][col:]
    try:
        node = ast.parse("".join(lines).strip(), mode="eval").body
    except SyntaxError:
        return None
    if isinstance(node, ast.Call) and len(node.args) > index:
        return ast.unparse(node.args[index])
    return None
