"""Per-call step timings, in milliseconds, as pydantic models."""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, model_validator


class ExecutionTimes(BaseModel):
    """Milliseconds spent in each step of the last call; None for a step that did
    not run in it (an optional hook the backend does not define, a step after
    the one that failed, every step before the first call)."""

    preprocess: Optional[float] = None
    transform_inputs: Optional[float] = None
    execute: Optional[float] = None
    transform_outputs: Optional[float] = None

    def total(self) -> float:
        """Sum of the steps that ran."""
        return sum(
            value for name in self.model_fields_set if (value := getattr(self, name)) is not None
        )


class ExecutionMetrics(BaseModel):
    """The last call: its batch size, step times and their total."""

    batch_size: int
    execution_times: ExecutionTimes
    total_execution_time: Optional[float] = None

    @model_validator(mode="after")
    def calculate_total_execution_time(self) -> ExecutionMetrics:
        """Set ``total_execution_time`` to the sum of the steps (run on validation)."""
        self.total_execution_time = self.execution_times.total()
        return self
