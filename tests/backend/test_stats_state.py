"""Step statistics as plain data: exported by one pipeline, merged into another
(how a worker pool sums its workers' statistics)."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packflow import InferenceBackend, _core

STEPS = ("preprocess", "transform_inputs", "execute", "transform_outputs")


def state_of(samples: list[int]) -> dict:
    """The state of one step's histogram fed ``samples``, written straight from
    the raw samples (a bucket pair's value may be any value of its bucket)."""
    return {
        "count": len(samples),
        "total_ns": sum(samples),
        "min_ns": min(samples),
        "max_ns": max(samples),
        "buckets": [(v, 1) for v in samples],
    }


def fed(samples_by_step: dict[str, list[int]]) -> _core.StepStats:
    p = _core.StepStats()
    p.merge_stats({step: state_of(s) for step, s in samples_by_step.items() if s})
    return p


latency = st.one_of(
    st.integers(0, 40),
    st.integers(0, 10**9),
    st.integers(0, 2**63).map(lambda v: v | 1),
    st.sampled_from([15, 16, 17, 31, 32, 33, 2**40, 2**64 - 1]),
)


@settings(max_examples=200, deadline=None)
@given(
    samples=st.dictionaries(st.sampled_from(STEPS), st.lists(latency, min_size=1, max_size=300)),
    cuts=st.lists(st.integers(0, 300), max_size=5),
)
def test_merged_quantiles_equal_one_histogram_fed_every_sample(samples, cuts):
    whole = fed(samples)
    merged = _core.StepStats()
    for lo, hi in zip([0, *sorted(cuts)], [*sorted(cuts), None]):
        part = fed({step: s[lo:hi] for step, s in samples.items()})
        # through pickle, as from a worker process
        merged.merge_stats(pickle.loads(pickle.dumps(part.stats_state())))
    assert merged.stats() == whole.stats()
    assert merged.stats_state() == whole.stats_state()


def test_a_backend_state_round_trips_and_adds_up():
    class Echo(InferenceBackend):
        def execute(self, inputs):
            return inputs

    a, b = Echo(), Echo()
    for _ in range(30):
        a([{"x": 1}])
    for _ in range(12):
        b([{"x": 1}])
    state = a.stats_state()
    assert set(state) == {"preprocess", "execute"}
    assert state["execute"]["count"] == 30
    assert sum(c for _, c in state["execute"]["buckets"]) == 30
    b_before = b.get_stats()["execute"]
    b.merge_stats(state)
    merged, mine = b.get_stats()["execute"], a.get_stats()["execute"]
    assert merged["count"] == 42
    assert merged["max_ms"] == max(mine["max_ms"], b_before["max_ms"])
    assert merged["total_ms"] == pytest.approx(mine["total_ms"] + b_before["total_ms"])


@pytest.mark.parametrize(
    "state, message",
    [
        ({"warmup": state_of([5])}, "unknown step"),
        ({"execute": {**state_of([5, 6]), "count": 3}}, "count 3"),
        ({"execute": {**state_of([1000]), "min_ns": 5}}, "min 5"),
        ({"execute": {**state_of([1000, 1000]), "total_ns": 7}}, "total 7"),
        ({"execute": {"count": 1, "buckets": [(5, 1)]}}, 'no "total_ns"'),
    ],
)
def test_an_impossible_state_is_refused_and_nothing_is_added(state, message):
    p = fed({"preprocess": [10, 20]})
    before = p.stats_state()
    good = {"preprocess": state_of([30])}
    with pytest.raises(ValueError, match=message):
        p.merge_stats({**good, **state})
    assert p.stats_state() == before
