"""The inference backend of this project.

packflow calls a backend with one record (a dict) or a batch of records (a list
of dicts). Every call runs three steps, each one timed:

    transform_inputs(records) -> execute(features) -> transform_outputs(raw outputs)

Only ``execute`` must be written; the other two hand their input through
unchanged unless you override them. packflow.yaml names this class
(``inference_backend: inference:Backend``).
"""

from typing import Any

from packflow import BackendConfig, InferenceBackend


class Config(BackendConfig):
    """Settings of this backend.

    Add your own fields here (thresholds, model paths, ...). Values come from the
    defaults below, then packflow.yaml's ``backend_config``, then keyword
    arguments, then the JSON file named by ``BACKEND_CONFIG_FILE_PATH``.
    """


class Backend(InferenceBackend):
    backend_config_model = Config

    def initialize(self) -> None:
        """Runs once, when the backend is created: load model weights here."""
        self.model = None

    def transform_inputs(self, inputs: list[dict]) -> Any:
        """Turn the batch of records into what the model reads (a matrix, tensors, text).

        Keep one item per record: the batch must not gain or lose rows.
        """
        return inputs

    def execute(self, inputs: Any) -> Any:
        """Run the model on the prepared batch and return its raw outputs.

        Keep preparation and post-processing in the other two steps, so the time
        of this step is the model's own.
        """
        # Placeholder model: reports how many fields each record has.
        return [{"field_count": len(record)} for record in inputs]

    def transform_outputs(self, outputs: Any) -> list[dict]:
        """Turn the raw outputs into one JSON-serializable dict per input record."""
        return outputs
