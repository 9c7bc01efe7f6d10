from packflow.backend.metrics import ExecutionMetrics, ExecutionTimes


def test_total_sums_only_the_fields_that_were_set():
    t = ExecutionTimes(preprocess=1.5, execute=2.0)
    assert t.total() == 3.5
    t = ExecutionTimes(preprocess=1.0, execute=2.0, transform_inputs=0.5, transform_outputs=0.25)
    assert t.total() == 3.75


def test_metrics_total_is_computed():
    m = ExecutionMetrics(batch_size=4, execution_times={"preprocess": 1, "execute": 2})
    assert m.total_execution_time == 3
    assert m.execution_times.transform_inputs is None
    dumped = m.model_dump()
    assert dumped["batch_size"] == 4 and dumped["total_execution_time"] == 3
