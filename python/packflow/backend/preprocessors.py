"""Preprocessors: turn a batch of raw records into what ``transform_inputs`` or
``execute`` receives. The records and numpy preprocessors compile their config
into a plan in Rust once, at construction, and run it once per batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional, Union

from packflow import _core
from packflow import exceptions as exceptions
from packflow.backend.configuration import BackendConfig, InputFormats
from packflow.exceptions import PreprocessorInitError, PreprocessorRuntimeError
from packflow.logger import get_logger

logger = get_logger()

_RUNTIME_PREFIX = "Failed to preprocess inputs with the following exception: "


def get_preprocessor(config: BackendConfig) -> Preprocessor:
    """The preprocessor for ``config.input_format``."""
    fmt = config.input_format
    if fmt == InputFormats.RECORDS:
        return RecordsPreprocessor(config)
    if fmt == InputFormats.NUMPY:
        return NumpyPreprocessor(config)
    return PassthroughPreprocessor(config)


class Preprocessor(ABC):
    """Base class: checks its config at construction (``resolve``), then is called per batch."""

    def __init__(self, config: BackendConfig):
        self.config = config
        self.resolve()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    def __call__(self, raw_inputs: list[dict]) -> Any:
        try:
            return self.process(raw_inputs)
        except PreprocessorRuntimeError:
            raise
        except Exception as exc:
            raise PreprocessorRuntimeError(f"{_RUNTIME_PREFIX}{exc}") from exc

    def compiled(self) -> Optional[Union[_core.RecordsPlan, _core.NumpyPlan]]:
        """The Rust plan that does exactly what calling this preprocessor does,
        which the backend's pipeline runs in its place (and, for a
        :class:`~packflow._core.NumpyPlan`, reads JSON Lines straight into the
        feature array with); ``None`` when there is none, such as for a
        subclass that changed ``process`` or ``__call__``: then the pipeline
        calls the preprocessor itself."""
        return None

    @abstractmethod
    def resolve(self) -> None:
        """Check the config for what the pydantic model cannot express."""

    @abstractmethod
    def process(self, raw_inputs: list[dict]) -> Any:
        """Transform one batch of raw records."""


def _unchanged(obj: Preprocessor, cls: type, *names: str) -> bool:
    return all(getattr(type(obj), n) is getattr(cls, n) for n in names)


class PassthroughPreprocessor(Preprocessor):
    """Hands the batch on as it came (the same list object)."""

    def resolve(self) -> None:
        return None

    def process(self, raw_inputs: list[dict]) -> list[dict]:
        return raw_inputs

    def compiled(self) -> Optional[_core.RecordsPlan]:
        if not _unchanged(self, PassthroughPreprocessor, "process", "__call__"):
            return None
        # A records plan with nothing configured hands the batch on unchanged.
        return _core.RecordsPlan(
            {}, [], flatten_nested_inputs=False, ignore_delimiter_collisions=True
        )


class RecordsPreprocessor(Preprocessor):
    """Renames, selects and optionally flattens fields of each record.

    Without ``rename_fields``, ``feature_names`` or ``flatten_nested_inputs`` it is a
    passthrough. The caller's records are never modified.
    """

    def resolve(self) -> None:
        cfg = self.config
        self._plan = _core.RecordsPlan(
            {str(k): str(v) for k, v in cfg.rename_fields.items()},
            list(cfg.feature_names),
            cfg.flatten_nested_inputs,
            cfg.flatten_lists,
            cfg.nested_field_delimiter,
            cfg.ignore_delimiter_collisions,
        )
        self.passthrough = self._plan.passthrough
        if self.passthrough:
            logger.info("No rename, feature selection or flattening configured: passthrough mode")

    def process(self, raw_inputs: list[dict]) -> list[dict]:
        return self._plan(raw_inputs)

    def _check_for_delimiter_collisions(self, obj: dict) -> None:
        """Packflow 0.4.1's helper: ``PreprocessorRuntimeError`` if a key of ``obj``
        (at any depth) contains the delimiter, unless ``ignore_delimiter_collisions``.
        The plan makes this check itself while it runs."""
        if self.config.ignore_delimiter_collisions:
            return
        delimiter = self.config.nested_field_delimiter
        collisions = _core.check_delimiter_collisions(obj, delimiter, "")
        if collisions:
            raise PreprocessorRuntimeError(
                f"Keys containing the delimiter '{delimiter}' were found: {collisions}. "
                "This can cause ambiguity when using nested path access. Either rename these "
                "keys or set ignore_delimiter_collisions=True to bypass this check."
            )

    def _uses_nested_paths(self) -> bool:
        """Packflow 0.4.1's helper: whether a ``rename_fields`` key or a feature name
        contains the delimiter (so is a nested path)."""
        names = [*self.config.rename_fields, *self.config.feature_names]
        return any(self.config.nested_field_delimiter in name for name in names)

    def compiled(self) -> Optional[_core.RecordsPlan]:
        if not _unchanged(self, RecordsPreprocessor, "process", "__call__"):
            return None
        return self._plan


class NumpyPreprocessor(Preprocessor):
    """Turns records into a 2-D ndarray: one row per record, one column per feature."""

    def resolve(self) -> None:
        cfg = self.config
        if not cfg.feature_names:
            raise PreprocessorInitError(
                f"This preprocessor requires `feature_names` to be defined. Received config: "
                f"{cfg!r} (the numpy input format builds one column per feature name)"
            )
        source_of = {v: k for k, v in cfg.rename_fields.items()}
        self.features = [source_of.get(f, f) for f in cfg.feature_names]
        self._plan = _core.NumpyPlan(self.features, cfg.nested_field_delimiter)

    def process(self, raw_inputs: list[dict]) -> Any:
        return self._plan(raw_inputs)

    def compiled(self) -> Optional[_core.NumpyPlan]:
        if not _unchanged(self, NumpyPreprocessor, "process", "__call__"):
            return None
        return self._plan
