"""The job's accounting (``JobCounts``): what the sink checks once every write
task has finished. No cluster needed."""

from __future__ import annotations

import pytest

from packflow.ray.sink import JobCounts


def counts(spans, read=10, written=8, errors=2):
    c = JobCounts(read=read, written=written, errors=errors)
    for file, first, lines in spans:
        c.batch_lines[file].append((first, lines))
    return c


def test_batches_that_tile_every_file_pass():
    counts([("a", 1, 5), ("a", 6, 5), ("a", 11, 0), ("b", 1, 0)]).check()


@pytest.mark.parametrize(
    ("spans", "message"),
    [
        ([("a", 1, 5), ("a", 1, 5), ("a", 6, 0)], "a: lines 1-5 written twice"),
        ([("a", 1, 5), ("a", 11, 0)], "a: lines 6-10 never written"),
        ([("a", 1, 5), ("a", 6, 5)], "a: lines from 11 are missing"),
        ([("a", 2, 5), ("a", 7, 0)], "a: lines 1-1 never written"),
        ([("a", 1, 5), ("a", 6, 0), ("a", 6, 0)], "a: a batch at line 6 after the file's end"),
    ],
)
def test_a_lost_or_doubled_batch_is_an_error(spans, message):
    with pytest.raises(RuntimeError, match=message):
        counts(spans).check()


def test_read_must_equal_written_plus_errors():
    with pytest.raises(RuntimeError, match="read 10 != written 8 \\+ errors 1"):
        counts([], errors=1).check()


def state(ms: float, count: int) -> dict:
    """A ``stats_state()`` of ``count`` execute calls of ``ms`` each."""
    ns = int(ms * 1e6)
    return {
        "execute": {
            "count": count,
            "total_ns": ns * count,
            "min_ns": ns,
            "max_ns": ns,
            "buckets": [(ns, count)],
        }
    }


def test_steps_merge_the_actors_histograms():
    c = JobCounts()
    c.add(JobCounts(actor_stats={"a": state(1.0, 3)}))
    c.add(JobCounts(actor_stats={"b": state(5.0, 1)}))
    # An older snapshot of actor a (fewer calls) does not replace the newer one.
    c.add(JobCounts(actor_stats={"a": state(9.0, 1)}))
    step = c.steps()["execute"]
    assert (step["count"], step["total_ms"], step["mean_ms"]) == (4, 8.0, 2.0)
    assert step["p50_ms"] == pytest.approx(1.0, rel=0.05)
    assert step["max_ms"] == pytest.approx(5.0, rel=0.05)
