"""docs/getting-started.md is a transcript: its commands run here, in its order,
and print what the page shows.

The page marks what to do with HTML comments a reader does not see:
``<!-- file: PATH -->`` (write the next block to PATH), ``<!-- append: PATH -->``,
``<!-- edit: PATH: PREFIX -->`` (the next block replaces the line starting with
PREFIX) and ``<!-- walk -->`` (a console block: ``$ command`` lines, each
followed by what it printed). Output that changes from run to run (hashes,
sizes, timings, the project's absolute path, the port) is compared by shape.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "getting-started.md"
DIRECTIVE = re.compile(r"<!-- (file|append|edit|walk)(?::\s*(.*?))? -->")
FENCE = re.compile(r"```[a-z]*\n(.*?)```", re.S)

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="the walk uses curl")


def _steps(text: str) -> list[tuple[str, str, str]]:
    """``(kind, argument, block)`` for every marked block, in page order."""
    steps = []
    for match in DIRECTIVE.finditer(text):
        block = FENCE.search(text, match.end())
        assert block is not None and text[match.end() : block.start()].strip() == "", match[0]
        steps.append((match[1], match[2] or "", block[1]))
    return steps


def _normalize(line: str, project: Path, port: int) -> str:
    line = line.rstrip().replace(str(project), "PROJECT").replace(str(port), "8080")
    line = re.sub(r"[0-9a-f]{64}\s+\d+", "HASH SIZE", line)
    line = re.sub(r"[0-9a-f]{64}", "HASH", line)
    line = re.sub(r"\bin \d+\.\d+s\b", "in Ts", line)
    line = re.sub(r"\bin [\d.]+ ms\b", "in T ms", line)
    line = re.sub(r"wall [\d.]+ s \(start-up [\d.]+ s\), [\d,]+ rows/s", "wall T, R rows/s", line)
    return re.sub(r"p50 [\d.]+ ms +p99 [\d.]+ ms", "p50 T ms  p99 T ms", line)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _commands(block: str) -> list[tuple[str, list[str]]]:
    """``(command, expected output lines)`` of a console block."""
    out: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            out.append((line[2:], []))
        else:
            out[-1][1].append(line)
    return out


def _assert_shows(expected: list[str], printed: str, project: Path, port: int, command: str):
    """Every non-blank line the page shows is printed, in the page's order."""
    actual = [_normalize(line, project, port) for line in printed.splitlines()]
    position = 0
    for want in (_normalize(line, project, port) for line in expected if line.strip()):
        while position < len(actual) and actual[position] != want:
            position += 1
        assert position < len(actual), f"`{command}` did not print {want!r}:\n{printed}"
        position += 1


def _read_until(proc: subprocess.Popen, marker: str, timeout: float) -> str:
    seen, deadline = "", time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"no {marker!r} from the server:\n{seen}"
        if select.select([proc.stdout], [], [], left)[0]:
            seen += proc.stdout.readline()
    return seen


def test_the_getting_started_walk_runs_as_written(tmp_path):
    port = _free_port()
    text = DOC.read_text().replace("8080", str(port))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        env.pop(proxy, None)  # curl reaches the server on this machine, never a proxy
    env["no_proxy"] = env["NO_PROXY"] = "localhost,127.0.0.1"
    project = tmp_path / "url-risk"
    cwd, server = tmp_path, None
    try:
        for kind, argument, block in _steps(text):
            if kind == "file":
                (tmp_path / argument).write_text(block)
            elif kind == "append":
                with open(tmp_path / argument, "a") as f:
                    f.write("\n" + block)
            elif kind == "edit":
                path, prefix = (part.strip() for part in argument.split(":", 1))
                lines = (tmp_path / path).read_text().splitlines(keepends=True)
                (at,) = [i for i, line in enumerate(lines) if line.startswith(prefix)]
                lines[at : at + 1] = [block]
                (tmp_path / path).write_text("".join(lines))
            else:
                for command, expected in _commands(block):
                    if command.startswith("cd "):
                        cwd = (cwd / command[3:]).resolve()
                    elif command.endswith("&"):
                        server = subprocess.Popen(
                            shlex.split(command[:-1]),
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                        )
                        printed = _read_until(server, "Listening on", 120)
                        _assert_shows(expected, printed, project, port, command)
                    elif command == "kill %1":
                        assert server is not None
                        server.send_signal(signal.SIGTERM)  # what `kill %1` sends
                        assert server.wait(timeout=60) == 0
                        server = None
                    else:
                        done = subprocess.run(
                            command,
                            shell=True,
                            cwd=cwd,
                            env=env,
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            timeout=180,
                        )
                        assert done.returncode == 0, f"`{command}` exited {done.returncode}:\n"
                        _assert_shows(expected, done.stdout, project, port, command)
    finally:
        if server is not None:
            server.kill()
            server.wait()
