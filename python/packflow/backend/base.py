"""``InferenceBackend``: the class users subclass to run a model over records."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Union

from packflow import _core
from packflow import exceptions as exceptions
from packflow.backend.configuration import BackendConfig, load_backend_configuration
from packflow.backend.metrics import ExecutionMetrics
from packflow.backend.preprocessors import get_preprocessor
from packflow.backend.validation import InferenceBackendValidator
from packflow.exceptions import InferenceBackendInitializationError, InferenceBackendRuntimeError
from packflow.logger import get_logger

Records = list[dict]


def _metrics_of(stats: _core.StepStats) -> ExecutionMetrics:
    return ExecutionMetrics(batch_size=stats.batch_size or 0, execution_times=stats.last_times())


def _log_call(backend: InferenceBackend) -> None:
    """The verbose mode's log after each call: the backend's metrics, through
    its logger, both looked up at call time (a subclass may change either).
    The pipeline gets the backend with each call, so it holds none."""
    backend.logger.debug("%r", backend.get_metrics())


class InferenceBackend(ABC):
    """Base class of an inference backend.

    Define ``execute(inputs)``; optionally ``initialize()``, ``transform_inputs(inputs)``
    and ``transform_outputs(outputs)``. Calling the backend with a record or a list
    of records runs preprocess -> transform_inputs -> execute -> transform_outputs,
    timing each step.
    """

    backend_config_model: BackendConfig | type[BackendConfig] = BackendConfig

    def __init__(self, **kwargs: Any):
        self.logger = get_logger()
        self.config = load_backend_configuration(self.backend_config_model, **kwargs)
        self._preprocessor = get_preprocessor(self.config)
        self._pipeline = _core.Pipeline(
            self._preprocessor,
            self._preprocessor.compiled(),
            on_call=_log_call if self.config.verbose else None,
        )
        self._initialize()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def __call__(self, inputs: Union[dict, Records]) -> Union[dict, Records]:
        """Run the pipeline on one record (returns one output) or a list of records."""
        return self._pipeline.run(self, inputs)

    def _initialize(self) -> None:
        start = time.perf_counter()
        try:
            self.initialize()
        except Exception as exc:
            raise InferenceBackendInitializationError(
                f"Failed to initialize inference backend: {exc}"
            ) from exc
        elapsed_ms = (time.perf_counter() - start) * 1000
        self.logger.info("Initialized %s in %.4f ms", type(self).__name__, elapsed_ms)

    def _preprocess(self, raw_inputs: Records) -> Any:
        """The configured preprocessor on its own (not timed)."""
        return self._preprocessor(raw_inputs)

    def _execute_and_profile_step(self, method: Callable[[Any], Any], data: Any) -> Any:
        """Run one step the way a call does, for code written against Packflow 0.4.1:
        ``method(data)``, an ``Exception`` from it wrapped in
        ``InferenceBackendRuntimeError`` (``step`` is the method's name without
        underscores). A call runs its steps in the Rust core: overriding this
        method does not change what ``__call__`` does, and this method records no
        metrics."""
        step = method.__name__.strip("_")
        try:
            return method(data)
        except Exception as exc:
            error = InferenceBackendRuntimeError(f"{step}() failed with the following error: {exc}")
            error.step = step
            raise error from exc

    def initialize(self) -> None:
        """One-time setup (load weights, warm caches); runs at construction."""
        return None

    @abstractmethod
    def execute(self, inputs: Any) -> Any:
        """Run the model on the (transformed) inputs and return its outputs."""

    def check_io(self, inputs: Union[dict, Records]) -> Union[dict, Records]:
        """Run ``inputs`` through the backend and check the outputs meet packflow's
        I/O format: as many rows as inputs, a list of dicts, JSON-serializable."""
        return InferenceBackendValidator(self).run(inputs)

    def validate(self, inputs: Union[dict, Records]) -> Union[dict, Records]:
        """Older name of :meth:`check_io`."""
        return self.check_io(inputs)

    def get_metrics(self) -> ExecutionMetrics:
        """Step timings (ms) and batch size of the last call: only the steps that call
        completed (None for the others); before any call, batch size 0 and no steps."""
        return _metrics_of(self._pipeline.step_stats)

    def get_stats(self) -> dict[str, dict[str, float]]:
        """Per step since construction (or ``reset_stats``): count, total_ms, mean_ms,
        min_ms, max_ms, p50_ms, p90_ms, p99_ms (quantiles within about 3%)."""
        return self._pipeline.step_stats.stats()

    def get_step_histograms(self, bounds_ns: list[int]) -> dict[str, tuple[list[int], int, int]]:
        """Per step since construction (or ``reset_stats``): ``(counts, total_ns,
        count)``, where ``counts[i]`` is how many calls took at most
        ``bounds_ns[i]`` nanoseconds: the cumulative buckets of a Prometheus
        histogram, exact to within one histogram bucket (about 6%)."""
        return self._pipeline.step_stats.histograms(list(bounds_ns))

    def reset_stats(self) -> None:
        """Start the per-step statistics afresh."""
        self._pipeline.step_stats.reset_stats()

    def stats_state(self) -> dict[str, dict[str, Any]]:
        """The per-step histograms as plain data (picklable, JSON-able), for
        :meth:`merge_stats` of a backend in another process; a worker pool sums
        its workers' statistics this way."""
        return self._pipeline.step_stats.stats_state()

    def merge_stats(self, state: dict[str, dict[str, Any]]) -> None:
        """Add the statistics of another backend's :meth:`stats_state` to this
        one's: :meth:`get_stats` then covers the calls of both, quantiles
        included (merging loses nothing)."""
        self._pipeline.step_stats.merge_stats(state)

    def ready(self) -> bool:
        """Whether the backend can take calls; it can once constructed."""
        return True
