"""``packflow.ray`` end to end on the session's local cluster: the same outputs
as ``packflow run``, every error row naming its file and line, exact counts
when an actor is killed mid-job, archives, records, and a failing
``initialize()`` that stops the job."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import ray.cloudpickle

from packflow.ray import (
    JsonLinesDatasink,
    ProjectLoadError,
    error_rows,
    output_rows,
    process,
    read_json_lines,
    run_files,
)
from packflow.sample_data import sample_events, sample_lines
from tests.support.sample_projects import write_project

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "firewall-anomaly"
PACKFLOW = [sys.executable, "-m", "packflow.cli"]

pytestmark = pytest.mark.usefixtures("ray_cluster")


def local_run(project: Path, src: Path, tmp: Path) -> tuple[list[bytes], list[dict]]:
    """Outputs and error rows of ``packflow run`` (the local engine) on ``src``."""
    out, err = tmp / f"{src.stem}.local.out", tmp / f"{src.stem}.local.err"
    proc = subprocess.run(
        [*PACKFLOW, "run", str(project), "-i", str(src), "-o", str(out), "--errors", str(err)],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return out.read_bytes().splitlines(), [json.loads(x) for x in err.read_bytes().splitlines()]


def read_dir(directory: Path) -> list[bytes]:
    return [line for f in sorted(directory.glob("*.jsonl")) for line in f.read_bytes().splitlines()]


def test_outputs_and_errors_equal_the_local_run_over_several_files(tmp_path):
    files = []
    for k in range(3):
        src = tmp_path / f"events-{k}.jsonl"
        src.write_bytes(b"".join(sample_lines(700 + 100 * k, seed=k, malformed_every=97)))
        files.append(src)
    # A blank line and a last line without a newline, as `packflow run` sees them.
    files[0].write_bytes(files[0].read_bytes() + b"\n   \n" + b'{"ts": 5}')

    summary = run_files(
        EXAMPLE,
        str(tmp_path / "events-*.jsonl"),
        str(tmp_path / "out"),
        str(tmp_path / "err"),
        batch_size=64,
        batches_per_block=2,
    )

    expected_out: list[bytes] = []
    expected_err: list[dict] = []
    for src in files:
        out, errs = local_run(EXAMPLE, src, tmp_path)
        expected_out += out
        expected_err += [{"file": str(src), **row} for row in errs]
    got_out = read_dir(tmp_path / "out")
    got_err = [json.loads(x) for x in read_dir(tmp_path / "err")]
    assert sorted(got_out) == sorted(expected_out)
    key = lambda row: (row["file"], row["line"])  # noqa: E731
    assert sorted(got_err, key=key) == sorted(expected_err, key=key)
    assert summary.errors == len(expected_err) > 20
    assert summary.written == len(expected_out)
    assert summary.read == summary.written + summary.errors == 700 + 800 + 900 + 1
    # Every error row names the line it came from.
    lines = {str(src): src.read_bytes().split(b"\n") for src in files}
    for row in got_err:
        assert lines[row["file"]][row["line"] - 1].decode() == row["raw"]
    assert {"preprocess", "execute"} <= set(summary.steps)


def test_an_exported_archive_runs_on_the_actors(tmp_path):
    proc = subprocess.run(
        [*PACKFLOW, "export", str(EXAMPLE), "-o", str(tmp_path / "dist")],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    (archive,) = (tmp_path / "dist").glob("*.zip")
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(500, malformed_every=100)))
    summary = run_files(archive, str(src), str(tmp_path / "out"), str(tmp_path / "err"))
    expected, errors = local_run(EXAMPLE, src, tmp_path)
    assert sorted(read_dir(tmp_path / "out")) == sorted(expected)
    assert (
        (summary.read, summary.written, summary.errors)
        == (500, 495, 5)
        == (
            500,
            len(expected),
            len(errors),
        )
    )


def test_initialize_failing_stops_the_job_with_its_error(tmp_path):
    project = write_project(
        tmp_path / "broken",
        backend="from packflow import InferenceBackend\n\n"
        "class Backend(InferenceBackend):\n"
        "    def initialize(self):\n"
        "        raise RuntimeError('weights missing: model.bin')\n"
        "    def execute(self, inputs):\n"
        "        return inputs\n",
    )
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(100)))
    started = time.monotonic()
    with pytest.raises(ProjectLoadError) as info:
        run_files(project, str(src), str(tmp_path / "out"), str(tmp_path / "err"))
    assert info.value.error_type == "InferenceBackendInitializationError"
    assert "weights missing: model.bin" in info.value.error
    assert time.monotonic() - started < 120
    assert not list((tmp_path / "out").glob("*.jsonl"))


def test_an_unknown_config_key_stops_the_job_before_initialize():
    from packflow import BackendConfig, InferenceBackend
    from packflow.exceptions import UnknownConfigKeysError
    from packflow.ray import ProjectSpec

    class Config(BackendConfig):
        threshold: float = 0.5

    class Strict(InferenceBackend):
        backend_config_model = Config

        def initialize(self):
            raise AssertionError("initialize() ran")

        def execute(self, inputs):
            return inputs

    with pytest.raises(UnknownConfigKeysError, match="'treshold' \\(did you mean 'threshold'"):
        ProjectSpec(Strict, {"treshold": 0.9}).load()
    with pytest.raises(UnknownConfigKeysError, match="'treshold'"):
        ProjectSpec(EXAMPLE, {"treshold": 0.9}).load()


# -- an actor killed mid-job ----------------------------------------------------

KILL_REGISTRY = "packflow-test-kill-registry"

SLOW_BACKEND = f"""
import ray
from packflow import InferenceBackend


class Backend(InferenceBackend):
    def initialize(self):
        self.registry = ray.get_actor({KILL_REGISTRY!r})
        self.me = ray.get_runtime_context().current_actor
        ray.get(self.registry.started.remote(self.me))

    def execute(self, inputs):
        # One batch, after the tenth, stalls until the test kills its actor.
        ray.get(self.registry.batch.remote(self.me))
        return [{{"id": r["id"], "double": 2 * r["id"]}} for r in inputs]
"""


@ray.remote(num_cpus=0, max_concurrency=4)
class Registry:
    """Where the test's actors announce themselves and count batches; the
    eleventh batch is held (its actor stays inside ``execute``) until the
    test has killed that actor."""

    def __init__(self):
        self.actors = []
        self.batches = 0
        self.stalled = None

    def started(self, handle):
        self.actors.append(handle)

    def batch(self, handle):
        import time

        self.batches += 1
        if self.batches == 11:
            self.stalled = handle
            time.sleep(300)  # ended by the kill: the caller dies with its actor

    def state(self):
        return len(self.actors), self.batches, self.stalled


def test_an_actor_killed_mid_job_is_replaced_and_nothing_is_lost_or_doubled(tmp_path):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    registry = Registry.options(name=KILL_REGISTRY).remote()
    project = write_project(tmp_path / "slow", backend=SLOW_BACKEND)
    n = 4000
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b"".join(
            b"not json\n" if i % 401 == 400 else json.dumps({"id": i}).encode() + b"\n"
            for i in range(n)
        )
    )
    killed = []

    def kill_the_stalled_actor():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, _, stalled = ray.get(registry.state.remote())
            if stalled is not None:
                ray.kill(stalled, no_restart=False)  # in the middle of a batch
                killed.append(stalled)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_the_stalled_actor)
    killer.start()
    try:
        summary = run_files(
            project,
            str(src),
            str(tmp_path / "out"),
            str(tmp_path / "err"),
            batch_size=50,
            batches_per_block=1,
        )
    finally:
        killer.join()
    started, batches, _ = ray.get(registry.state.remote())
    ray.kill(registry)

    assert killed, "no batch was held for the kill"
    assert started == 3  # two actors, and the killed one started again
    ids = sorted(json.loads(line)["id"] for line in read_dir(tmp_path / "out"))
    good = [i for i in range(n) if i % 401 != 400]
    assert ids == good  # every good row once: none lost, none written twice
    errors = [json.loads(x) for x in read_dir(tmp_path / "err")]
    assert sorted(e["line"] for e in errors) == [i + 1 for i in range(n) if i % 401 == 400]
    assert (summary.read, summary.written, summary.errors) == (n, len(good), n - len(good))
    # The held batch ran again (so did others queued on the killed actor: Ray
    # runs a task at least once); their outputs were written once.
    assert batches > summary.batches


# -- datasets in, datasets out ---------------------------------------------------


def test_records_dataset_gives_output_and_error_datasets():
    events = sample_events(300)
    events[7] = {"ts": "not a number"}  # the model refuses it
    for i, event in enumerate(events):
        event["event_id"] = i
    ds = ray.data.from_items(events)
    results = process(ds, EXAMPLE, records=True, line_column="event_id").materialize()
    outputs = output_rows(results).take_all()
    errors = error_rows(results).take_all()

    from packflow import BatchEngine
    from packflow.loaders import InferenceBackendLoader

    engine = BatchEngine(InferenceBackendLoader.from_path(EXAMPLE))
    expected = engine.process_records(
        [{k: v for k, v in e.items() if k != "event_id"} for e in events]
    )
    assert len(outputs) == expected.written == 299
    key = lambda row: json.dumps(row, sort_keys=True)  # noqa: E731
    want = [json.loads(line) for line in expected.output.splitlines()]
    assert sorted(map(key, outputs)) == sorted(map(key, want))
    assert [(e["line"], e["step"], e["error"]) for e in errors] == [
        (7, row.step, row.error) for row in expected.errors
    ]
    assert errors[0]["line"] == 7 and json.loads(errors[0]["raw"])["ts"] == "not a number"


def test_binary_files_dataset_keeps_file_and_line(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(50)) + b"{broken\n")
    ds = ray.data.read_binary_files(str(src), include_paths=True)
    results = process(ds, EXAMPLE).materialize()
    errors = error_rows(results).take_all()
    assert [(e["file"].endswith("in.jsonl"), e["line"], e["step"]) for e in errors] == [
        (True, 51, "parse")
    ]
    sink = JsonLinesDatasink(str(tmp_path / "out"), str(tmp_path / "err"))
    results.write_datasink(sink)
    assert (sink.counts.read, sink.counts.written, sink.counts.errors) == (51, 50, 1)


def test_lines_dataset_rows_tile_each_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(105)))
    rows = read_json_lines(str(src), batch_size=10, batches_per_block=3).take_all()
    spans = sorted((r["first_line"], r["lines"]) for r in rows)
    assert spans == [(1 + 10 * k, 10) for k in range(10)] + [(101, 5), (106, 0)]
    assert b"".join(r["data"] for r in rows) == src.read_bytes()


def test_import_packflow_does_not_import_ray():
    code = "import sys, packflow, packflow.cli; print('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.stdout.strip() == b"False", proc.stderr.decode()


def test_actors_that_reserve_every_cpu_are_warned_about(tmp_path, caplog):
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(sample_lines(10)))
    caplog.set_level("WARNING", logger="packflow")
    process(read_json_lines(str(src)), EXAMPLE, actors=2)  # lazy: nothing runs
    assert not [r for r in caplog.records if r.name.startswith("packflow")]
    process(read_json_lines(str(src)), EXAMPLE, actors=2, num_cpus=1.0)
    (record,) = [r for r in caplog.records if r.name.startswith("packflow")]
    assert "2 actors x 1 CPUs leave less than one of the cluster's 2 CPUs" in record.message
