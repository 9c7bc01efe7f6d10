"""``check_io``: run sample inputs through a backend and check its outputs."""

from __future__ import annotations

from typing import Any, Union

from packflow import _core
from packflow.exceptions import InferenceBackendRuntimeError


class InferenceBackendValidator:
    """Checks a backend's inputs and outputs against packflow's I/O format."""

    def __init__(self, backend: Any):
        self.backend = backend

    def run(self, inputs: Union[dict, list[dict]]) -> Union[dict, list[dict]]:
        """Run the backend on ``inputs`` and check the result; returns the outputs."""
        single = isinstance(inputs, dict)
        batch = [inputs] if single else inputs
        _core.check_inputs(batch)
        try:
            outputs = self.backend(batch)
        except Exception as exc:
            # Packflow 0.4's words, typo included (scripts match them), then the cause.
            raise InferenceBackendRuntimeError(
                "Error encountered when running the inference backend. This is not a validation "
                "issue. See above stack track for additional information. "
                f"The backend raised {type(exc).__name__}: {exc}"
            ) from exc
        _core.check_outputs(outputs, len(batch))
        self._warn_missing_output_keys(outputs)
        return outputs[0] if single else outputs

    def _warn_missing_output_keys(self, outputs: list[dict]) -> None:
        declared = getattr(self.backend.config, "output_keys", None)
        if not declared:
            return
        missing = _core.missing_keys(outputs, list(declared))
        for key in missing:
            self.backend.logger.warning(
                "output_keys: declared key '%s' was not found in any output record", key
            )
