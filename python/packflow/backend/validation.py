"""``check_io``: run sample inputs through a backend and check its outputs.

The underscore functions are Packflow 0.4.1's single checks, kept at their
module path for tests and subclasses that call them; ``check_io`` itself runs
all of them in one pass of the Rust core.
"""

from __future__ import annotations

from typing import Any, Union

from packflow import _core
from packflow import exceptions as exceptions
from packflow.exceptions import InferenceBackendRuntimeError, InferenceBackendValidationError


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
        declared = getattr(self.backend.config, "output_keys", None)
        if declared:
            _check_output_keys(outputs, declared, self.backend.logger)
        return outputs[0] if single else outputs


def _input_is_correct_format(inputs: Any) -> None:
    """``InferenceBackendValidationError`` unless ``inputs`` is a list of dicts."""
    _core.check_inputs(inputs)


def _inputs_and_outputs_match_len(inputs: Any, outputs: Any) -> None:
    """``InferenceBackendValidationError`` unless there are as many outputs as inputs
    (``TypeError`` for an argument without a length)."""
    n_in, n_out = len(inputs), len(outputs)
    if n_in != n_out:
        raise InferenceBackendValidationError(
            f"Inputs and Outputs must have matching lengths. Received {n_in} inputs and "
            f"returned {n_out} outputs."
        )


def _output_is_list_of_dicts(outputs: Any) -> None:
    """``InferenceBackendValidationError`` unless ``outputs`` is a list of dicts."""
    if not isinstance(outputs, list):
        raise InferenceBackendValidationError(
            f"Outputs must be a Python list. Input type received was {type(outputs)}"
        )
    # The length check passes by construction, so only the shape is judged here;
    # serializability is the next helper's question.
    bad = next((i for i, row in enumerate(outputs) if not isinstance(row, dict)), None)
    if bad is not None:
        raise InferenceBackendValidationError(
            "Outputs must be a list of dictionaries. "
            f"Value at index {bad} is not a dictionary. Type found was {type(outputs[bad])}"
        )


def _output_is_json_serializable(outputs: Any) -> None:
    """``InferenceBackendValidationError`` naming the first item of ``outputs`` that
    cannot be written as JSON, and the key path inside it (numpy scalars and
    numeric arrays can, as everywhere in packflow)."""
    rows = list(outputs)
    if all(type(row) is dict for row in rows):
        _core.check_outputs(rows, len(rows))
        return
    # Items that are not dicts are judged alone, each as the value of a one-row batch
    # under the empty key (which the core's messages leave out of the key path).
    for index, row in enumerate(rows):
        try:
            _core.check_outputs([{"": row}], 1)
        except InferenceBackendValidationError as exc:
            # The core's message ends with "Error: <reason>"; if its wording ever
            # changes, the whole message is the reason rather than nothing.
            head, sep, reason = str(exc).partition("Error: ")
            reason = reason if sep else head
            raise InferenceBackendValidationError(
                f"Value at index {index} is not JSON Serializable. Please ensure returned "
                f"values are native Python types. Error: {reason}"
            ) from None


def _check_output_keys(outputs: list[dict], output_keys: list[str], logger: Any) -> None:
    """Log a warning on ``logger`` for each of ``output_keys`` found in no output row."""
    if not output_keys:
        return
    for key in _core.missing_keys(outputs, list(output_keys)):
        logger.warning(f"output_keys: declared key '{key}' was not found in any output record")
