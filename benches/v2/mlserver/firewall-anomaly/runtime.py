"""The MLServer peer of the V2 benchmark (benches/v2/run.py): a custom
runtime serving examples/firewall-anomaly's backend, loaded by packflow.

It runs in its own virtualenv (``make bench-v2`` makes it, with packflow's
``python/`` on ``PYTHONPATH``), never in the project's. ``predict`` takes the
[N, 9] FP64 tensor the V2 clients send, gives it to the backend's own
``execute`` and ``transform_outputs`` (the numpy array as it is: no records,
no preprocessor),
and answers ``anomaly_score`` (FP64) and ``alert`` (BOOL), shape [N], as
``packflow serve`` does. Adaptive batching (model-settings.json) stacks the
requests of a batch into one tensor before ``predict``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

PROJECT = Path(__file__).resolve().parents[4] / "examples" / "firewall-anomaly"


class FirewallRuntime(MLModel):
    async def load(self) -> bool:
        from packflow.loaders import InferenceBackendLoader

        self._backend = InferenceBackendLoader.from_project(PROJECT)
        self._width = len(self._backend.config.feature_names)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        if len(payload.inputs) != 1:
            raise InferenceError(f"expected one [N, {self._width}] tensor")
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float64, copy=False)
        if features.ndim != 2 or features.shape[1] != self._width:
            raise InferenceError(f"expected shape [N, {self._width}], got {list(features.shape)}")
        # The backend's own steps after its preprocessor (the optional ones
        # only when it defines them), as a call of the backend runs them.
        backend = self._backend
        before = getattr(backend, "transform_inputs", None)
        after = getattr(backend, "transform_outputs", None)
        outputs = backend.execute(before(features) if before else features)
        rows = after(outputs) if after else outputs
        n = len(rows)
        scores = [row["anomaly_score"] for row in rows]
        alerts = [bool(row["alert"]) for row in rows]
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            outputs=[
                ResponseOutput(name="anomaly_score", datatype="FP64", shape=[n], data=scores),
                ResponseOutput(name="alert", datatype="BOOL", shape=[n], data=alerts),
            ],
        )
