"""``packflow run --engine ray`` (in process, on the session's cluster)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from packflow.cli import cli
from packflow.sample_data import sample_lines

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "firewall-anomaly"


def run(*args):
    return CliRunner().invoke(cli, ["run", str(EXAMPLE), "--engine", "ray", *map(str, args)])


@pytest.mark.usefixtures("ray_cluster")
def test_writes_directories_and_prints_the_summary(tmp_path):
    for k in range(2):
        (tmp_path / f"in-{k}.jsonl").write_bytes(b"".join(sample_lines(300, malformed_every=100)))
    stats = tmp_path / "stats.json"
    result = run(
        "-i", tmp_path / "in-*.jsonl", "-o", tmp_path / "out", "--errors", tmp_path / "err",
        "--actors", 2, "--batch-size", 50, "--stats", stats, "--fail-on-error",
    )  # fmt: skip
    assert result.exit_code == 1, result.output  # --fail-on-error: 6 rows failed
    assert "rows read 600, written 594, errors 6" in result.output
    outputs = [x for f in (tmp_path / "out").glob("*.jsonl") for x in f.read_text().splitlines()]
    errors = [x for f in (tmp_path / "err").glob("*.jsonl") for x in f.read_text().splitlines()]
    assert len(outputs) == 594 and len(errors) == 6
    assert set(json.loads(outputs[0])) == {"anomaly_score", "alert"}
    assert json.loads(stats.read_text())["read"] == 600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--skip-lines", 3, "-i", "x", "-o", "y"],
            "--skip-lines is not supported with --engine ray",
        ),
        (["-o", "y"], "give -i"),
        (["-i", "x"], "give -o"),
    ],
)
def test_options_of_the_local_engine_only_are_refused(args, message):
    result = run(*args)
    assert result.exit_code == 2 and message in result.output


@pytest.mark.usefixtures("ray_cluster")
def test_a_pattern_matching_nothing_is_an_error(tmp_path):
    result = run("-i", tmp_path / "none-*.jsonl", "-o", tmp_path / "out")
    assert result.exit_code == 1 and "no file matches" in result.output


@pytest.mark.usefixtures("ray_cluster")
def test_an_unknown_config_key_is_a_usage_error(tmp_path):
    (tmp_path / "in.jsonl").write_bytes(b"".join(sample_lines(10)))
    result = run("-i", tmp_path / "in.jsonl", "-o", tmp_path / "out", "--config", "treshold=1")
    assert result.exit_code == 2, result.output
    assert "'treshold'" in result.output and "feature_names" in result.output
