"""Serving your own tools: the modules `--tools` names, and those installed packages declare in the
entry-point group `rhetor_stream.tools`, are imported at start-up, and the `@mcp_tool` functions
their namespaces hold are added to the app's registry next to the built-ins.

Anything that goes wrong (a module that cannot be found or raises while importing, a tool name
already taken, a module with no tools at all) stops start-up with one line that names the module and
the problem: a server that silently lacks the tool a user meant to serve is worse than none.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path

from rhetor_stream.settings import SettingsError
from rhetor_stream.tools.registry import DuplicateToolError, ToolRegistry

ENTRY_POINT_GROUP = "rhetor_stream.tools"


class ToolLoadError(SettingsError):
    """A tools module that cannot be served; the message names it and the problem, on one line."""


def load_tools(sources: Sequence[str], tools: ToolRegistry) -> None:
    """Import every module of `sources` (dotted names or .py files) and of the entry-point group, and
    add the tools their namespaces hold to `tools`.

    An import happens once per process; another app loading the same modules scans them again into
    its own registry.
    """
    for source in dict.fromkeys(sources):
        _load(f"--tools {source}", _module_name(source), functools.partial(_import, source), tools)
    for entry_point in _entry_points():
        _load(f"entry point {entry_point.name} = {entry_point.value} ({ENTRY_POINT_GROUP})",
              entry_point.module, functools.partial(_import_entry_point, entry_point), tools)


@functools.cache
def _entry_points() -> tuple[importlib.metadata.EntryPoint, ...]:
    """Looked up once per process: scanning every installed distribution is not free."""
    return tuple(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


def _load(label: str, module_name: str, load: Callable[[], types.ModuleType], tools: ToolRegistry) -> None:
    try:
        found = tools.add_module(load())
    except ToolLoadError:
        raise
    except DuplicateToolError as exc:
        raise ToolLoadError(f"{label}: {exc}") from None
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise ToolLoadError(f"{label}: no module named {exc.name!r} (is it installed, or is the "
                                "current directory on the path?)") from None
        raise ToolLoadError(f"{label}: importing it failed: {_one_line(exc)}") from None
    except Exception as exc:  # whatever the module raises, start-up says it in one line
        raise ToolLoadError(f"{label}: importing it failed: {_one_line(exc)}") from None
    if not found:
        raise ToolLoadError(f"{label}: it defines no tools (decorate its functions with @mcp_tool)")


def _module_name(source: str) -> str:
    """The dotted name, or for a file a name made from its resolved path (so loading it twice is
    the same import)."""
    if not _is_file(source):
        return source
    path = Path(source).resolve()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return f"rhetor_stream_tools_{path.stem}_{digest}"


def _is_file(source: str) -> bool:
    return source.endswith(".py") or "/" in source or "\\" in source


def _import_entry_point(entry_point: importlib.metadata.EntryPoint) -> types.ModuleType:
    """The module an entry point names (`module` or `module:attribute`): its tools are served."""
    entry_point.load()
    return sys.modules[entry_point.module]


def _import(source: str) -> types.ModuleType:
    if not _is_file(source):
        return importlib.import_module(source)
    name = _module_name(source)
    if name in sys.modules:
        return sys.modules[name]
    path = Path(source)
    if not path.is_file():
        raise ToolLoadError(f"--tools {source}: no such file")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ToolLoadError(f"--tools {source}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it, as an import does (dataclasses and pickle need it)
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _one_line(exc: BaseException) -> str:
    """The exception and where in the user's code it was raised."""
    where = ""
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({exc.filename}, line {exc.lineno})"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        user = [frame for frame in frames if "importlib" not in frame.filename
                and not frame.filename.startswith("<frozen")]
        if user:
            where = f" ({user[-1].filename}, line {user[-1].lineno})"
    text = " ".join(str(exc).split()) if not isinstance(exc, SyntaxError) else exc.msg
    return f"{type(exc).__name__}: {text}{where}"
