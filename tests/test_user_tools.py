"""Your own tools in one flag: the README's example served with --tools, exactly as written, plus the
one-line start-up errors for modules that cannot be served and the entry-point group."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from rhetor_stream.settings import Settings
from rhetor_stream.sse.parser import SSEParser
from rhetor_stream.tools.loading import ToolLoadError
from rhetor_stream.web.app import create_app, served_tools
from rhetor_stream.web.state import STATE
from tests.conftest import ROOT, spawn_server, stop_server

README = (ROOT / "README.md").read_text("utf-8")
CLASH = ("from rhetor_stream.tools import mcp_tool\n\n@mcp_tool(name='Echo')\n"
         "async def echo(text: str) -> str:\n    return text\n")


def _readme_example() -> tuple[str, str]:
    """The Python block and the shell block of the README's "Writing tools" section."""
    section = README[README.index("## Writing tools"):]
    python = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    shell = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert python is not None and shell is not None
    return python.group(1), shell.group(1)


def _post(url: str, body: bytes) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()  # type: ignore[no-any-return]


def test_the_readme_example_serves_its_tools(tmp_path: Path) -> None:
    code, shell = _readme_example()
    (tmp_path / "my_tools.py").write_text(code)
    command = shell.splitlines()[0].split("#")[0].split()
    assert command[:3] == [".venv/bin/python", "-m", "rhetor_stream"]
    calls = re.findall(r"curl .*?(http://127\.0\.0\.1:8003\S+) .*?-d '(.*?)'", shell, re.DOTALL)
    assert len(calls) == 2
    process, base = spawn_server(*command[3:], cwd=tmp_path)
    try:
        with urllib.request.urlopen(f"{base}/api/mcp/v2/tools", timeout=30) as response:
            tools = {tool["name"]: tool for tool in json.loads(response.read())}
        assert tools["Countdown"]["streaming"] and tools["Add"]["tags"] == ["math"]
        assert tools["Countdown"]["input_schema"]["properties"]["start"]["maximum"] == 100
        (process_url, add), (stream_url, countdown) = calls
        assert json.loads(_post(process_url.replace("http://127.0.0.1:8003", base), add.encode()))["result"] == 5
        events = SSEParser().feed(_post(stream_url.replace("http://127.0.0.1:8003", base), countdown.encode()))
        assert "".join(e.json()["content"]["content"] for e in events if e.event == "chunk") == "3... 2... 1... "
        assert next(e.json() for e in events if e.event == "complete")["result"] == "lift-off"
    finally:
        stop_server(process)


def test_a_file_path_and_the_variable_work_too(tmp_path: Path) -> None:
    code, _ = _readme_example()
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "mine.py").write_text(code)
    process, base = spawn_server(env={**_env(), "RHETOR_TOOLS": str(tmp_path / "tools" / "mine.py")})
    try:
        with urllib.request.urlopen(f"{base}/api/mcp/v2/tools", timeout=30) as response:
            assert {"Add", "Countdown"} <= {tool["name"] for tool in json.loads(response.read())}
    finally:
        stop_server(process)


def test_two_apps_in_one_process_serve_their_own_tools(tmp_path: Path) -> None:
    code, _ = _readme_example()
    (tmp_path / "mine.py").write_text(code)
    mine = Settings(tools=(str(tmp_path / "mine.py"),))
    served = [{tool.name for tool in create_app(settings)[STATE].tools} for settings in (mine, Settings(), mine)]
    assert {"Add", "Countdown", "Echo"} <= served[0] and served[2] == served[0]  # loaded twice: no clash
    assert "Echo" in served[1] and not {"Add", "Countdown"} & served[1]


def test_an_entry_point_registers_its_tools(tmp_path: Path) -> None:
    (tmp_path / "shipped_tools.py").write_text(
        "from rhetor_stream.tools import mcp_tool\n\n@mcp_tool(name='Shipped')\nasync def shipped() -> str:\n"
        "    return 'from a package'\n")
    dist = tmp_path / "shipped-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shipped\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rhetor_stream.tools]\nshipped = shipped_tools\n")
    process, base = spawn_server(env={**_env(), "PYTHONPATH": str(tmp_path)})
    try:
        answer = json.loads(_post(f"{base}/api/mcp/v2/process", b'{"tool_name": "Shipped"}'))
        assert answer["result"] == "from a package"
    finally:
        stop_server(process)


# "{s}" makes module names unique per test: an import is cached for the whole test session.
@pytest.mark.parametrize("files, flag, expected", [
    ({}, "nowhere{s}", "no module named 'nowhere{s}'"),
    ({"needs_more{s}.py": "import not_installed_anywhere\n"}, "needs_more{s}",
     "importing it failed: ModuleNotFoundError: No module named 'not_installed_anywhere' ("),
    ({"broken{s}.py": "import json\nraise RuntimeError('no\\nconfig')\n"}, "broken{s}",
     "importing it failed: RuntimeError: no config ("),
    ({"typo{s}.py": "def f(:\n"}, "typo{s}.py", "importing it failed: SyntaxError: "),
    ({"clash{s}.py": CLASH}, "clash{s}",
     "a tool named 'Echo' is already registered (by rhetor_stream.tools.builtin)"),
    ({"empty{s}.py": "VALUE = 1\n"}, "empty{s}", "it defines no tools"),
    ({}, "missing/tools{s}.py", "no such file"),
])
def test_a_module_that_cannot_be_served_is_named_with_its_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], flag: str, expected: str) -> None:
    unique = "_" + tmp_path.name.replace("-", "_")
    for name, text in files.items():
        (tmp_path / name.format(s=unique)).write_text(text)
    flag = flag.format(s=unique)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ToolLoadError) as caught:
        served_tools([flag])
    message = str(caught.value)
    assert message.startswith(f"--tools {flag}: {expected.format(s=unique)}") and "\n" not in message, message


@pytest.mark.parametrize("workers", [[], ["--workers", "2", "--event-store", "redis://127.0.0.1:1/0"]])
def test_start_up_stops_with_that_one_line(tmp_path: Path, workers: list[str]) -> None:
    (tmp_path / "clash.py").write_text(CLASH)
    done = subprocess.run([sys.executable, "-m", "rhetor_stream", "--port", "0", "--tools", "clash", *workers],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == ("rhetor_stream: error: --tools clash: a tool named 'Echo' is already registered "
                           "(by rhetor_stream.tools.builtin)\n")


def _env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if not key.startswith("RHETOR_")}
