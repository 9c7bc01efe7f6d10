"""Scores firewall events for anomalies with a small logistic model over nine
numeric features (nested paths, one of them renamed in packflow.yaml)."""

import numpy as np

from packflow import BackendConfig, InferenceBackend


class FirewallConfig(BackendConfig):
    threshold: float = 0.9


class Backend(InferenceBackend):
    backend_config_model = FirewallConfig

    def initialize(self):
        # Feature order: ts, src.port, src.geo.lat, src.geo.lon, dst.port,
        # bytes_in, bytes.out, rule.id, score (see packflow.yaml).
        self.mean = np.array([1.7e9, 3500.0, 0.0, 0.0, 443.0, 1.5e5, 3.5e5, 50.0, 0.5])
        self.scale = np.array([3e4, 1500.0, 52.0, 104.0, 100.0, 9e4, 2e5, 29.0, 0.29])
        self.weights = np.array([0.0, 0.4, 0.1, -0.1, 0.8, 1.2, 0.9, 0.3, 2.5])
        self.bias = -3.0
        self.logger.info("firewall model ready: %d features", self.weights.size)

    def execute(self, inputs):
        z = ((inputs - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def transform_outputs(self, probs):
        alerts = (probs > self.config.threshold).tolist()
        return [{"anomaly_score": round(p, 6), "alert": a} for p, a in zip(probs.tolist(), alerts)]
