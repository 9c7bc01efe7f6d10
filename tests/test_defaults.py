"""Each front door's defaults are declared once, in ``packflow.constants``: the
command's options, the keyword defaults of the functions behind it and the
option tables in docs/ all say the same figure."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click
import pytest

from packflow import constants
from packflow.cli.run import run_command
from packflow.cli.serve import serve_command
from packflow.engine import DEFAULT_MAX_LINE_BYTES, LineReader
from packflow.runner import run_stream
from packflow.serving import create_app
from packflow.serving.app import PackflowApp
from packflow.serving.batcher import Batcher
from packflow.serving.http1 import Limits
from packflow.serving.server import serve

DOCS = Path(__file__).resolve().parents[1] / "docs"

SERVE = {
    "host": constants.SERVE_HOST,
    "port": constants.SERVE_PORT,
    "max_batch_rows": constants.SERVE_MAX_BATCH_ROWS,
    "max_wait_ms": constants.SERVE_MAX_WAIT_MS,
    "max_queue_rows": constants.SERVE_MAX_QUEUE_ROWS,
    "max_body_mb": constants.SERVE_MAX_BODY_BYTES / (1 << 20),
    "request_timeout_s": constants.SERVE_REQUEST_TIMEOUT_S,
    "max_connections": constants.SERVE_MAX_CONNECTIONS,
    "header_timeout_s": constants.SERVE_HEADER_TIMEOUT_S,
    "keep_alive_s": constants.SERVE_KEEP_ALIVE_S,
    "workers": constants.SERVE_WORKERS,
}
KAFKA = {
    "max_in_flight": constants.KAFKA_MAX_IN_FLIGHT,
    "max_in_flight_mb": constants.KAFKA_MAX_IN_FLIGHT_MB,
}
RUN = {
    "batch_size": constants.RUN_BATCH_SIZE,
    "max_wait_ms": constants.RUN_MAX_WAIT_MS,
    "max_line_bytes": DEFAULT_MAX_LINE_BYTES,
}


def _option_defaults(command: click.Command) -> dict[str, object]:
    return {p.name: p.default for p in command.params if isinstance(p, click.Option)}


def _keyword_defaults(function) -> dict[str, object]:
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def test_the_serve_command_takes_its_defaults_from_the_constants():
    options = _option_defaults(serve_command)
    assert {name: options[name] for name in SERVE} == SERVE


@pytest.mark.parametrize("function", [create_app, PackflowApp.__init__])
def test_the_serving_app_takes_its_defaults_from_the_constants(function):
    defaults = _keyword_defaults(function)
    assert defaults["max_batch_rows"] == constants.SERVE_MAX_BATCH_ROWS
    assert defaults["max_wait_ms"] == constants.SERVE_MAX_WAIT_MS
    assert defaults["max_queue_rows"] == constants.SERVE_MAX_QUEUE_ROWS
    assert defaults["max_body_bytes"] == constants.SERVE_MAX_BODY_BYTES
    assert defaults["request_timeout_s"] == constants.SERVE_REQUEST_TIMEOUT_S


def test_the_batcher_and_the_server_take_their_defaults_from_the_constants():
    batcher = _keyword_defaults(Batcher.__init__)
    assert batcher["max_batch_rows"] == constants.SERVE_MAX_BATCH_ROWS
    assert batcher["max_wait_s"] * 1000 == constants.SERVE_MAX_WAIT_MS
    assert batcher["max_queue_rows"] == constants.SERVE_MAX_QUEUE_ROWS
    assert batcher["timeout_s"] == constants.SERVE_REQUEST_TIMEOUT_S
    server = _keyword_defaults(serve)
    assert (server["host"], server["port"]) == (constants.SERVE_HOST, constants.SERVE_PORT)
    assert server["max_connections"] == constants.SERVE_MAX_CONNECTIONS
    limits = Limits()
    assert (limits.max_connections, limits.header_timeout_s, limits.keep_alive_s) == (
        constants.SERVE_MAX_CONNECTIONS,
        constants.SERVE_HEADER_TIMEOUT_S,
        constants.SERVE_KEEP_ALIVE_S,
    )
    assert (limits.max_header_bytes, limits.max_headers) == (
        constants.SERVE_MAX_HEADER_BYTES,
        constants.SERVE_MAX_HEADERS,
    )


def test_packflow_run_run_stream_and_the_reader_agree_with_the_constants():
    options = _option_defaults(run_command)
    assert {name: options[name] for name in RUN} == RUN
    assert {name: options[name] for name in KAFKA} == KAFKA
    reader = _keyword_defaults(LineReader.__init__)
    assert {name: reader[name] for name in RUN} == RUN
    assert _keyword_defaults(run_stream)["batch_size"] == constants.RUN_BATCH_SIZE


def _number(text: str) -> float:
    """The first figure in a table cell: ``1,024`` -> 1024, ``67108864 (64 MiB)``."""
    return float(re.search(r"\d[\d,]*(?:\.\d+)?", text).group().replace(",", ""))


def _table_defaults(doc: str) -> dict[str, str]:
    """``| `--option` | default | effect |`` rows of a docs page."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    return dict(re.findall(r"^\| `--([a-z-]+)` \| ([^|]*?) \|", text, flags=re.M))


def _usage_defaults(doc: str) -> dict[str, str]:
    """``[--option VALUE]`` pairs of a usage block that shows the defaults."""
    text = (DOCS / doc).read_text(encoding="utf-8")
    return dict(re.findall(r"\[--([a-z-]+) ([^\]\s]+)\]", text))


@pytest.mark.parametrize(
    "doc, defaults",
    [("serving.md", SERVE), ("streaming.md", RUN), ("kafka.md", KAFKA)],
    ids=["serving.md", "streaming.md", "kafka.md"],
)
def test_the_docs_option_tables_name_the_defaults(doc, defaults):
    table = _table_defaults(doc)
    documented = {name: table[name.replace("_", "-")] for name in defaults}
    for name, cell in documented.items():
        expected = defaults[name]
        if isinstance(expected, str):
            assert cell.strip("` ") == expected, name
        else:
            assert _number(cell) == expected, f"{doc}: --{name} says {cell}"


def test_the_serve_usage_block_names_the_defaults():
    usage = _usage_defaults("serving.md")
    assert {option.replace("-", "_") for option in usage} == set(SERVE)
    for option, value in usage.items():
        expected = SERVE[option.replace("-", "_")]
        assert (value if isinstance(expected, str) else _number(value)) == expected, option


def test_the_scaling_page_names_the_run_batch_size():
    text = (DOCS / "scaling.md").read_text(encoding="utf-8")
    figures = re.findall(r"\*\*`--batch-size`\*\* \(([\d,]+)\)", text)
    assert [_number(f) for f in figures] == [constants.RUN_BATCH_SIZE]


def test_the_table_parser_reads_a_row():
    assert _number("67108864 (64 MiB)") == 67108864
    assert _number("1,024") == 1024
    assert _usage_defaults("serving.md")["max-batch-rows"] == "1024"
