"""Every error path that Packflow 0.4.1 and packflow share, run through both.

Code written for 0.4.1 catches exception types and sometimes matches message
text, so on each path packflow must raise the reference's exception type (or a
subclass of it) with a message that contains the reference's message, then adds
where (row index, key path, file, line). The same snippet runs in the reference
(its own virtualenv, see ``reference.py``) and here, with the helpers of
``PRELUDE`` in both.

``DIFFERENCES`` lists the paths where we deliberately differ; each one is in
docs/compatibility.md. A case listed there is still run and its outcome pinned,
so a change on either side shows up here.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.reference import run_script_both

# Helpers both interpreters define before running the cases: backends built
# from a few parameters, and project directories under ``tmp``.
PRELUDE = r'''
import os, sys, textwrap
import numpy as np
from packflow import BackendConfig, InferenceBackend
from packflow import utils as U
from packflow.backend.configuration import load_backend_configuration
from packflow.loaders import InferenceBackendLoader, LocalLoader, ModuleLoader, PackflowConfig
from packflow.loaders.utils import inference_backend_parts
from packflow.project import PackflowProject
from packflow.backend import validation as V
from packflow.loaders import config as C


class Echo(InferenceBackend):
    def execute(self, inputs):
        return inputs


def returning(value, **config):
    """A backend whose execute returns ``value(inputs)`` (or ``value``)."""
    class Returning(InferenceBackend):
        def execute(self, inputs):
            return value(inputs) if callable(value) else value
    return Returning(**config)


def failing(step, error, **config):
    """A backend whose ``step`` (initialize or a hook) raises ``error``."""
    def boom(self, *args):
        raise error
    boom.__name__ = step
    attrs = {"execute": lambda self, inputs: inputs}
    attrs[step] = boom
    return type("Failing", (InferenceBackend,), attrs)(**config)


GOOD_BACKEND = (
    "from packflow import InferenceBackend\n"
    "class Backend(InferenceBackend):\n"
    "    def execute(self, inputs):\n"
    "        return inputs\n"
)


def project(name, yaml_text, files=None):
    """A project directory ``tmp/name`` with this packflow.yaml and files."""
    directory = os.path.join(tmp, name)
    os.makedirs(directory)
    with open(os.path.join(directory, "packflow.yaml"), "w", encoding="utf-8") as fh:
        fh.write(textwrap.dedent(yaml_text))
    for relative, text in (files or {}).items():
        path = os.path.join(directory, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    return directory


def run_cases(cases, tmp_dir):
    """``(name, code, data)`` -> ("ok",) or ("err", type name, MRO names, message)."""
    global tmp
    tmp = tmp_dir
    outcomes = []
    for name, code, data in cases:
        namespace = dict(globals(), data=data)
        try:
            exec(compile(code, name, "exec"), namespace)
            outcomes.append(("ok",))
        except Exception as exc:
            mro = [cls.__name__ for cls in type(exc).__mro__]
            outcomes.append(("err", type(exc).__name__, mro, str(exc)))
    return outcomes
'''


def run_both(cases: list[Any], tmp_path: Path) -> list[tuple[Any, Any]]:
    return run_script_both(PRELUDE, "run_cases", cases, tmp_path)


def _stdlib_paths_as_one(message: str) -> str:
    """A message as any supported Python words it: stdlib paths name the
    interpreter's directory, and 3.12 reworded the abstract-class TypeError."""
    message = re.sub(r"'[^']*/lib/python3\.\d+/", "'<stdlib>/", message)
    return re.sub(
        r"without an implementation for abstract methods? '?([\w', ]+?)'?$",
        lambda m: "with abstract method " + m.group(1).replace("'", ""),
        message,
    )


def assert_compatible(name: str, theirs: tuple, ours: tuple) -> None:
    assert theirs[0] == "err", f"{name}: the reference does not raise here: {theirs}"
    assert ours[0] == "err", f"{name}: the reference raises {theirs[1]}, we do not"
    _, their_type, _, their_message = theirs
    _, our_type, our_mro, our_message = ours
    # The reference may run on another Python than ours (make test-matrix): a
    # standard-library path in a message names that Python's directory.
    their_message, our_message = (_stdlib_paths_as_one(m) for m in (their_message, our_message))
    assert their_type in our_mro, f"{name}: {our_type} is not a {their_type}"
    assert their_message in our_message, (
        f"{name}: the reference's message is not in ours\n"
        f"  reference: {their_message!r}\n  ours:      {our_message!r}"
    )


@dataclass(frozen=True)
class Difference:
    """A deliberate difference on an error path (each is in docs/compatibility.md).

    ``kind``: "message" (same type, other text), "type" (another exception type),
    "ours only" (only we raise) or "theirs only" (only the reference raises).
    """

    kind: str
    why: str


# -- the paths -------------------------------------------------------------------------

CASES: dict[str, str] = {
    # configuration (pydantic validates in both)
    "config: input_format unknown": "Echo(input_format='xml')",
    "config: verbose not a bool": "Echo(verbose='maybe')",
    "config: feature_names not a list": "Echo(feature_names='abc')",
    "config: feature_names of ints": "Echo(feature_names=[1, 2])",
    "config: rename_fields not a dict": "Echo(rename_fields=[1])",
    "config: delimiter not a str": "Echo(nested_field_delimiter=1)",
    "config: delimiter empty": "Echo(nested_field_delimiter='')",
    "config: delimiter empty, flatten mode": (
        "Echo(nested_field_delimiter='', flatten_nested_inputs=True)([{'a': {'b': 1}}])"
    ),
    "config: model is not a model": "load_backend_configuration(dict, a=1)",
    "config: subclass field invalid": (
        "class C(BackendConfig):\n    threshold: float = 0.5\n"
        "class B(Echo):\n    backend_config_model = C\n"
        "B(threshold='high')"
    ),
    "config: unknown key read back": (
        "class C(BackendConfig):\n    threshold: float = 0.5\n"
        "class B(Echo):\n    backend_config_model = C\n"
        "B(treshold=0.9).config.treshold"
    ),
    # construction
    "init: numpy without feature_names": "Echo(input_format='numpy')",
    "init: initialize raises": "failing('initialize', ValueError('weights missing'))",
    "init: execute missing": "type('NoExecute', (InferenceBackend,), {})()",
    # metrics
    "metrics: before any call": "Echo().get_metrics()",
    # calling with the wrong input
    "call: int": "Echo()(5)",
    "call: str": "Echo()('x')",
    "call: None": "Echo()(None)",
    "call: tuple of dicts": "Echo()(({'a': 1},))",
    "call: ndarray": "Echo()(np.zeros(2))",
    # preprocessing
    "records: non-dict row, features": "Echo(feature_names=['a'])([{'a': 1}, 5])",
    "records: non-dict row, flatten": "Echo(flatten_nested_inputs=True)([{'a': 1}, 5])",
    "records: list row, rename": "Echo(rename_fields={'a': 'b'})([{'a': 1}, [1]])",
    "records: collision at the top": "Echo(feature_names=['a.b'])([{'a': {'b': 1}, 'x.y': 2}])",
    "records: collision nested": "Echo(feature_names=['a.b'])([{'a': {'b': 1, 'c.d': 3}}])",
    "records: collision in row 1": (
        "Echo(rename_fields={'a.b': 'z'})([{'a': {'b': 1}}, {'q.r': 1, 's': {'t.u': 2}}])"
    ),
    "records: collision with '::'": (
        "Echo(feature_names=['a::b'], nested_field_delimiter='::')([{'a::b': 1, 'a': {}}])"
    ),
    "records: flatten duplicate": "Echo(flatten_nested_inputs=True)([{'a': {'b': 1}, 'a.b': 2}])",
    "records: flatten duplicate, feature": (
        "Echo(flatten_nested_inputs=True, feature_names=['a.b'])([{'a': {'b': 1}, 'a.b': 2}])"
    ),
    "numpy: non-dict row": "Echo(input_format='numpy', feature_names=['a'])([{'a': 1}, 5])",
    "numpy: None row": "Echo(input_format='numpy', feature_names=['a'])([None])",
    # the steps
    "step: transform_inputs raises": "failing('transform_inputs', KeyError('k'))([{'a': 1}])",
    "step: execute raises": "failing('execute', ValueError('bad model'))([{'a': 1}])",
    "step: transform_outputs raises": (
        "failing('transform_outputs', RuntimeError('no'))([{'a': 1}])"
    ),
    "step: a hook named otherwise": (
        "class B(Echo):\n    def ti(self, inputs):\n        raise KeyError('k')\n"
        "    transform_inputs = ti\n"
        "B()([{'a': 1}])"
    ),
    # the output of a call
    "output: dict": "returning({'a': 1})([{'a': 1}])",
    "output: tuple": "returning(lambda x: tuple(x))([{'a': 1}])",
    "output: ndarray": "returning(np.zeros(1))([{'a': 1}])",
    "output: None": "returning(None)([{'a': 1}])",
    "output: empty for a dict input": "returning([])({'a': 1})",
    # check_io / validate
    "check_io: str": "Echo().check_io('x')",
    "check_io: None": "Echo().check_io(None)",
    "check_io: tuple": "Echo().check_io(({'a': 1},))",
    "check_io: non-dict in row 1": "Echo().check_io([{'a': 1}, 2])",
    "check_io: backend raises": "failing('execute', ValueError('bad model')).check_io([{'a': 1}])",
    "check_io: output not a list": "returning({'a': 1}).check_io([{'a': 1}])",
    "check_io: more outputs": "returning(lambda x: x + x).check_io([{'a': 1}])",
    "check_io: fewer outputs": "returning([]).check_io([{'a': 1}])",
    "check_io: non-dict output": "returning([{'a': 1}, 5]).check_io([{'a': 1}, {'a': 2}])",
    "check_io: non-dict output, dict input": "returning([5]).validate({'a': 1})",
    "check_io: set": "returning([{'a': 1}, {'b': {1, 2}}]).check_io([{'a': 1}, {'a': 2}])",
    "check_io: object nested": (
        "returning([{'a': {'b': [1, {'c': object()}]}}]).check_io([{'a': 1}])"
    ),
    "check_io: bytes": "returning([{'b': b'x'}]).check_io([{'a': 1}])",
    "check_io: complex": "returning([{'b': 1j}]).check_io([{'a': 1}])",
    "check_io: tuple key": "returning([{'a': 1}, {'a': {(1,): 2}}]).check_io([{}, {}])",
    "check_io: str ndarray": "returning([{'d': np.array(['a'])}]).check_io([{'a': 1}])",
    "check_io: numpy int64": "returning([{'d': np.int64(1)}]).check_io([{'a': 1}])",
    "check_io: cycle": (
        "cycle = {}\ncycle['self'] = cycle\nreturning([cycle]).check_io([{'a': 1}])"
    ),
    "check_io: 3000 levels": (
        "deep = []\nfor _ in range(3000):\n    deep = [deep]\n"
        "returning([{'d': deep}]).check_io([{'a': 1}])"
    ),
    # data helpers
    "flatten_dict: list": "U.flatten_dict([1])",
    "flatten_dict: None": "U.flatten_dict(None)",
    "flatten_records: dict": "U.flatten_records({'a': 1})",
    "flatten_records: non-dict row": "U.flatten_records([{'a': 1}, 5])",
    "flatten_records: duplicate": "U.flatten_records([{}, {'a': {'b': 1}, 'a.b': 2}])",
    "flatten_dict: duplicate": "U.flatten_dict({'a': {'b': 1}, 'a.b': 2})",
    "get_nested_field: list": "U.get_nested_field([1], 'a')",
    "get_nested_field: None": "U.get_nested_field(None, 'a')",
    "get_nested_field_direct: int": "U.get_nested_field_direct(5, 'a.b')",
    "get_nested_field_direct: empty delimiter": "U.get_nested_field_direct({'a': 1}, 'a.b', '')",
    "set_nested_field_direct: int": "U.set_nested_field_direct(5, 'a.b', 1)",
    "set_nested_field_direct: empty delimiter": "U.set_nested_field_direct({}, 'a.b', 1, '')",
    "check_delimiter_collisions: list": "U.check_delimiter_collisions([1], '.')",
    "check_delimiter_collisions: int key": "U.check_delimiter_collisions({1: 2}, '.')",
    "records_to_ndarray: dict": "U.records_to_ndarray({'a': 1}, ['a'])",
    "records_to_ndarray: non-dict row": "U.records_to_ndarray([{'a': 1}, 5], ['a'])",
    "records_to_ndarray: None row": "U.records_to_ndarray([None], ['a'])",
    "records_to_ndarray: bad dtype": "U.records_to_ndarray([{'a': 'x'}], ['a'], dtype=float)",
    "records_to_ndarray: unknown dtype": "U.records_to_ndarray([{'a': 1}], ['a'], dtype='nope')",
    "records_to_ndarray: ragged": "U.records_to_ndarray([{'a': [1, 2]}, {'a': [1]}], ['a'])",
    "ensure_native_types: object": "U.ensure_native_types(object())",
    "ensure_native_types: nested object": "U.ensure_native_types({'a': [1, object()]})",
    "ensure_native_types: complex": "U.ensure_native_types(1j)",
    "ensure_native_types: bytes": "U.ensure_native_types(b'x')",
    "ensure_valid_output: object": "U.ensure_valid_output([{'a': 1}, object()])",
    "ensure_valid_output: int": "U.ensure_valid_output(5)",
    "ensure_valid_output: None": "U.ensure_valid_output(None)",
    # loaders
    "parts: no colon": "inference_backend_parts('abc')",
    "parts: two colons": "inference_backend_parts('a:b:c')",
    "parts: empty": "inference_backend_parts('')",
    "parts: int": "inference_backend_parts(5)",
    "module loader: no module": "ModuleLoader('packflow_no_such_module:Backend').load()",
    "module loader: no attribute": "ModuleLoader('json:Backend').load()",
    "module loader: not a backend": "ModuleLoader('json:JSONDecoder').load()",
    "module loader: bad path": "ModuleLoader('json').load()",
    "module loader: empty object name": "ModuleLoader('json:').load()",
    "local loader: no file": "LocalLoader('nofile:Backend', base_dir=tmp).load()",
    "local loader: bad path": "LocalLoader('nofile', base_dir=tmp).load()",
    "local loader: dotted, no file": "LocalLoader('pkg.mod:Backend', base_dir=tmp).load()",
    "local loader: no attribute": (
        "LocalLoader('inference:Nope', base_dir=project('la', 'name: ok\\n', "
        "{'inference.py': GOOD_BACKEND})).load()"
    ),
    # load_backend_module: what 0.4.1 let through unwrapped (load() wraps it)
    "load_backend_module: local, no attribute": (
        "LocalLoader('inference:Nope', base_dir=project('lb1', 'name: ok\\n', "
        "{'inference.py': GOOD_BACKEND})).load_backend_module()"
    ),
    "load_backend_module: local, no file": (
        "LocalLoader('nofile:Backend', base_dir=tmp).load_backend_module()"
    ),
    "load_backend_module: local, bad path": (
        "LocalLoader('nofile', base_dir=tmp).load_backend_module()"
    ),
    "load_backend_module: local, syntax error": (
        "LocalLoader('broken:Backend', base_dir=project('lb2', 'name: ok\\n', "
        "{'broken.py': 'def (\\n'})).load_backend_module()"
    ),
    "load_backend_module: local, raises at import": (
        "LocalLoader('raising:Backend', base_dir=project('lb3', 'name: ok\\n', "
        "{'raising.py': 'raise RuntimeError(\"at import\")\\n'})).load_backend_module()"
    ),
    "load_backend_module: local, import error": (
        "LocalLoader('importing:Backend', base_dir=project('lb4', 'name: ok\\n', "
        "{'importing.py': 'import packflow_no_such_module\\n'})).load_backend_module()"
    ),
    "load_backend_module: module, no module": (
        "ModuleLoader('packflow_no_such_module:Backend').load_backend_module()"
    ),
    "load_backend_module: module, bad path": "ModuleLoader('json').load_backend_module()",
    "load_backend_module: module, no attribute": "ModuleLoader('json:Nope').load_backend_module()",
    "_import_module_from_source: no file": (
        "LocalLoader._import_module_from_source(os.path.join(tmp, 'nofile.py'))"
    ),
    "project: no file": "InferenceBackendLoader.from_project(project('p1', 'name: ok\\n'))",
    "project: no class": (
        "InferenceBackendLoader.from_project(project('p2', 'name: ok\\n', "
        "{'inference.py': 'x = 1\\n'}))"
    ),
    "project: import error": (
        "InferenceBackendLoader.from_project(project('p3', 'name: ok\\n', "
        "{'inference.py': 'import packflow_no_such_module\\n'}))"
    ),
    "project: syntax error": (
        "InferenceBackendLoader.from_project(project('p4', 'name: ok\\n', "
        "{'inference.py': 'def (\\n'}))"
    ),
    "project: raises at import": (
        "InferenceBackendLoader.from_project(project('p5', 'name: ok\\n', "
        "{'inference.py': 'raise RuntimeError(\"at import\")\\n'}))"
    ),
    "project: not a backend class": (
        "InferenceBackendLoader.from_project(project('p6', 'name: ok\\n', "
        "{'inference.py': 'class Backend:\\n    pass\\n'}))"
    ),
    "project: a function": (
        "InferenceBackendLoader.from_project(project('p7', 'name: ok\\n', "
        "{'inference.py': 'def Backend(**kwargs):\\n    return 5\\n'}))"
    ),
    "project: abstract backend": (
        "InferenceBackendLoader.from_project(project('p8', 'name: ok\\n', "
        "{'inference.py': 'from packflow import InferenceBackend\\n"
        "class Backend(InferenceBackend):\\n    pass\\n'}))"
    ),
    "project: initialize raises": (
        "InferenceBackendLoader.from_project(project('p9', 'name: ok\\n', "
        "{'inference.py': GOOD_BACKEND + '    def initialize(self):\\n"
        '        raise ValueError("no weights")\\n\'}))'
    ),
    "project: bad backend kwarg": (
        "InferenceBackendLoader.from_project(project('p10', 'name: ok\\n', "
        "{'inference.py': GOOD_BACKEND}), verbose='maybe')"
    ),
    "project: module loader, no module": (
        "InferenceBackendLoader.from_project(project('p11', "
        "'name: ok\\nloader: module\\ninference_backend: packflow_no_such_module:Backend\\n'))"
    ),
    "project: no directory": "InferenceBackendLoader.from_project(os.path.join(tmp, 'nope'))",
    "project: load_config, no file": "PackflowProject(os.path.join(tmp, 'nope')).load_config()",
    "project: export, no file": "PackflowProject(os.path.join(tmp, 'nope')).export()",
    "project: create, bad name": "PackflowProject(tmp).create('1bad')",
    # packflow.yaml
    "yaml: syntax": "PackflowConfig.from_project_path(project('y1', 'name: [unclosed\\n'))",
    "yaml: tab indentation": (
        "PackflowConfig.from_project_path(project('y2', 'name: ok\\n\\tversion: 1\\n'))"
    ),
    "yaml: bad name": "PackflowConfig.from_project_path(project('y3', 'name: 1bad\\n'))",
    "yaml: no name": "PackflowConfig.from_project_path(project('y4', 'version: 0.1.0\\n'))",
    "yaml: bad loader": (
        "PackflowConfig.from_project_path(project('y5', 'name: ok\\nloader: remote\\n'))"
    ),
    "yaml: bad inference_backend": (
        "PackflowConfig.from_project_path(project('y6', 'name: ok\\ninference_backend: x\\n'))"
    ),
    "yaml: two problems": (
        "PackflowConfig.from_project_path(project('y7', 'name: 1bad\\nloader: remote\\n'))"
    ),
    "yaml: unknown field": (
        "PackflowConfig.from_project_path(project('y8', 'name: ok\\nbogus: 1\\n'))"
    ),
    "yaml: env a list": "PackflowConfig.from_project_path(project('y9', 'name: ok\\nenv: [1]\\n'))",
    "yaml: backend_config an int": (
        "PackflowConfig.from_project_path(project('y10', 'name: ok\\nbackend_config: 5\\n'))"
    ),
    "yaml: a list": "PackflowConfig.from_project_path(project('y11', '- 1\\n- 2\\n'))",
    "yaml: empty": "PackflowConfig.from_project_path(project('y12', ''))",
    "yaml: via load_config": "PackflowProject(project('y13', 'name: 1bad\\n')).load_config()",
    "yaml: via from_project": (
        "InferenceBackendLoader.from_project(project('y14', 'name: 1bad\\n'))"
    ),
    "yaml: model": "PackflowConfig(name='ok', loader='remote')",
    # loaders.config, 0.4.1's module of the packflow.yaml helpers
    "load_packflow_config: no directory": "C.load_packflow_config(os.path.join(tmp, 'nope'))",
    "load_packflow_config: no packflow.yaml": "C.load_packflow_config(tmp)",
    "load_packflow_config: invalid field": "C.load_packflow_config(project('c2', 'name: 1bad\\n'))",
    "_load_raw_packaging_config: no file": "C._load_raw_packaging_config(tmp)",
    "_load_raw_packaging_config: bad yaml": (
        "C._load_raw_packaging_config(project('c3', 'name: [unclosed\\n'))"
    ),
    "validate_for_export: not a config": "C.validate_for_export(None)",
    # backend.validation's single checks
    "_input_is_correct_format: str": "V._input_is_correct_format('x')",
    "_input_is_correct_format: non-dict row": "V._input_is_correct_format([{}, 5])",
    "_inputs_and_outputs_match_len: shorter": "V._inputs_and_outputs_match_len([{}, {}], [{}])",
    "_inputs_and_outputs_match_len: unsized": "V._inputs_and_outputs_match_len([{}], 5)",
    "_output_is_list_of_dicts: tuple": "V._output_is_list_of_dicts(({},))",
    "_output_is_list_of_dicts: non-dict row": "V._output_is_list_of_dicts([{}, {}, 'x'])",
    "_output_is_json_serializable: set": "V._output_is_json_serializable([{'a': 1}, {'b': {1}}])",
    "_output_is_json_serializable: bytes item": "V._output_is_json_serializable([1, b'x'])",
    "_output_is_json_serializable: unsized": "V._output_is_json_serializable(5)",
    # InferenceBackend's step runner
    "_execute_and_profile_step: raises": (
        "def transform_inputs(data):\n    raise KeyError('k')\n"
        "Echo()._execute_and_profile_step(transform_inputs, [{}])"
    ),
}

DIFFERENCES: dict[str, Difference] = {
    "config: delimiter empty": Difference(
        "ours only", "BackendConfig refuses an empty nested_field_delimiter"
    ),
    "config: delimiter empty, flatten mode": Difference(
        "ours only", "BackendConfig refuses an empty nested_field_delimiter"
    ),
    "metrics: before any call": Difference(
        "theirs only", "get_metrics() before the first call: batch size 0, no steps"
    ),
    "records: non-dict row, features": Difference(
        "message", "0.4.1 leaks an AttributeError's text ('int' object has no attribute 'copy')"
    ),
    "records: non-dict row, flatten": Difference(
        "message", "0.4.1 leaks an AttributeError's text ('int' object has no attribute 'copy')"
    ),
    "records: list row, rename": Difference(
        "message", "0.4.1 leaks dict()'s text (cannot convert dictionary update sequence ...)"
    ),
    "records: flatten duplicate, feature": Difference(
        "theirs only", "flatten mode resolves only the requested path; the literal key wins"
    ),
    "step: a hook named otherwise": Difference(
        "message", "0.4.1 names the failed step by the hook function's __name__ ('ti() failed')"
    ),
    "check_io: numpy int64": Difference(
        "theirs only", "numpy scalars and numeric arrays are serializable here"
    ),
    "check_io: cycle": Difference(
        "message", "json's 'Circular reference detected': ours names the 255-level limit and path"
    ),
    "check_io: 3000 levels": Difference(
        "message", "json's RecursionError text: ours names the 255-level limit and path"
    ),
    "get_nested_field: list": Difference(
        "message", "0.4.1 leaks flatten-dict's text ('... not in the flattenalbe types ...')"
    ),
    "get_nested_field: None": Difference(
        "message", "0.4.1 leaks the `in` operator's text ('argument of type ... not iterable')"
    ),
    "get_nested_field_direct: int": Difference(
        "message", "0.4.1 leaks the `in` operator's text ('argument of type ... not iterable')"
    ),
    "set_nested_field_direct: int": Difference(
        "message", "0.4.1 leaks the `in` operator's text ('argument of type ... not iterable')"
    ),
    "check_delimiter_collisions: list": Difference(
        "type", "0.4.1 raises AttributeError ('list' object has no attribute 'items'); TypeError"
    ),
    "check_delimiter_collisions: int key": Difference(
        "message", "0.4.1 leaks the `in` operator's text ('argument of type ... not iterable')"
    ),
    "parts: int": Difference(
        "type", "0.4.1 raises AttributeError ('int' object has no attribute 'split'); ValueError"
    ),
    "module loader: empty object name": Difference(
        "message", "0.4.1 looks up an attribute named ''; we refuse the path before importing"
    ),
    "local loader: dotted, no file": Difference(
        "message", "0.4.1 looks for the file 'pkg' for 'pkg.mod'; we name pkg/mod.py"
    ),
    "yaml: a list": Difference(
        "message", "0.4.1 leaks the ** call's text ('argument after ** must be a mapping')"
    ),
    "yaml: empty": Difference(
        "message", "0.4.1 leaks the ** call's text ('argument after ** must be a mapping')"
    ),
}


def test_every_difference_is_a_case():
    assert set(DIFFERENCES) <= set(CASES)
    assert {d.kind for d in DIFFERENCES.values()} <= {"message", "type", "ours only", "theirs only"}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[Any, Any]]:
    cases = [(name, code, None) for name, code in CASES.items()]
    pairs = run_both(cases, tmp_path_factory.mktemp("errors"))
    return dict(zip(CASES, pairs))


@pytest.mark.parametrize("name", [n for n in CASES if n not in DIFFERENCES])
def test_same_error_as_the_reference(outcomes, name):
    theirs, ours = outcomes[name]
    assert_compatible(name, theirs, ours)


@pytest.mark.parametrize("name", list(DIFFERENCES))
def test_documented_difference(outcomes, name):
    theirs, ours = outcomes[name]
    kind = DIFFERENCES[name].kind
    if kind == "ours only":
        assert (theirs[0], ours[0]) == ("ok", "err"), (theirs, ours)
    elif kind == "theirs only":
        assert (theirs[0], ours[0]) == ("err", "ok"), (theirs, ours)
    else:
        assert theirs[0] == ours[0] == "err", (theirs, ours)
        same_type = theirs[1] in ours[2]
        assert same_type == (kind == "message"), (theirs, ours)
        # Not a silent match either: if the message were contained, drop the entry.
        assert kind == "type" or theirs[3] not in ours[3], (theirs, ours)


def test_every_documented_difference_is_in_the_compatibility_page():
    page = (Path(__file__).resolve().parents[1] / "docs" / "compatibility.md").read_text()
    assert "## Error paths" in page
    section = page.split("## Error paths", 1)[1]
    for name in DIFFERENCES:
        assert f"`{name}`" in section, name


# -- generated inputs ------------------------------------------------------------------

# Values json.dumps rejects, and the name json gives their type.
UNSERIALIZABLE = st.sampled_from(
    [{1, 2}, frozenset(), b"x", bytearray(b"y"), 1j, range(2), Ellipsis, object()]
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
)
KEYS = st.text(alphabet="abc.:_", min_size=1, max_size=4)


def json_trees(leaf: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        leaf,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
        max_leaves=8,
    )


@st.composite
def row_with_one_bad_value(draw) -> dict:
    """A JSON-like dict with exactly one value json.dumps rejects, somewhere."""
    bad = draw(UNSERIALIZABLE)
    path = draw(st.lists(st.one_of(KEYS, st.just(0)), max_size=4))
    value: Any = bad
    for step in reversed(path):
        value = {step: value} if isinstance(step, str) else [value]
    row = draw(st.dictionaries(KEYS, json_trees(JSON_SCALARS), max_size=3))
    row[draw(KEYS)] = value
    return row


NOT_RECORDS = st.one_of(
    st.integers(),
    st.text(max_size=3),
    st.none(),
    st.floats(),
    st.binary(max_size=2),
    st.tuples(st.integers()),
    st.frozensets(st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)

GENERATED = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_generated(cases: list[tuple[str, str, Any]], tmp_path_factory) -> None:
    pickle.dumps(cases)  # what cannot cross to the reference fails here, not there
    pairs = run_both(cases, tmp_path_factory.mktemp("generated"))
    for (name, _, data), (theirs, ours) in zip(cases, pairs):
        assert_compatible(f"{name} {data!r}", theirs, ours)


@given(st.lists(NOT_RECORDS, min_size=1, max_size=12))
@GENERATED
def test_generated_inputs_that_are_not_records(tmp_path_factory, values):
    cases = [("call", "Echo()(data)", v) for v in values if not isinstance(v, list)]
    cases += [("check_io", "Echo().check_io(data)", v) for v in values if not isinstance(v, list)]
    cases += [("check_io row", "Echo().check_io([{}, data])", v) for v in values]
    numpy_row = "Echo(input_format='numpy', feature_names=['a'])([data])"
    cases += [("numpy row", numpy_row, v) for v in values]
    cases += [("records_to_ndarray", "U.records_to_ndarray([{}, data], ['a'])", v) for v in values]
    cases += [("flatten_records", "U.flatten_records([data])", v) for v in values]
    cases += [("flatten_dict", "U.flatten_dict(data)", v) for v in values]
    check_generated(cases, tmp_path_factory)


@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 8)), min_size=1, max_size=10))
@GENERATED
def test_generated_output_lengths(tmp_path_factory, shapes):
    code = "returning([{'y': 1}] * data[1]).check_io([{'x': 1}] * data[0])"
    cases = [("lengths", code, (n_in, n_out)) for n_in, n_out in shapes if n_in != n_out]
    if cases:
        check_generated(cases, tmp_path_factory)


@given(st.lists(st.tuples(st.integers(0, 4), NOT_RECORDS), min_size=1, max_size=10))
@GENERATED
def test_generated_non_dict_outputs(tmp_path_factory, rows):
    code = (
        "index, bad = data\n"
        "outputs = [{'y': i} for i in range(5)]\n"
        "outputs[index] = bad\n"
        "returning(outputs).check_io([{'x': i} for i in range(5)])"
    )
    check_generated([("non-dict output", code, row) for row in rows], tmp_path_factory)


@given(st.lists(st.tuples(st.integers(0, 3), row_with_one_bad_value()), min_size=1, max_size=10))
@GENERATED
def test_generated_unserializable_outputs(tmp_path_factory, rows):
    code = (
        "index, bad_row = data\n"
        "outputs = [{'y': i} for i in range(4)]\n"
        "outputs[index] = bad_row\n"
        "returning(outputs).check_io([{'x': i} for i in range(4)])"
    )
    check_generated([("unserializable", code, row) for row in rows], tmp_path_factory)


@given(
    st.lists(
        st.tuples(
            st.lists(st.dictionaries(KEYS, json_trees(JSON_SCALARS), max_size=4), max_size=4),
            st.sampled_from([".", "::", "_"]),
        ),
        min_size=1,
        max_size=10,
    )
)
@GENERATED
def test_generated_delimiter_collisions(tmp_path_factory, batches):
    """Keys holding the delimiter anywhere in a record, with nested paths asked for:
    the same paths, in the same order, in both messages."""
    setup = "records, delimiter = data\nfeature = 'a' + delimiter + 'b'\n"
    features = setup + "Echo(feature_names=[feature], nested_field_delimiter=delimiter)(records)"
    renames = (
        setup + "Echo(rename_fields={feature: 'z'}, nested_field_delimiter=delimiter)(records)"
    )
    cases = [
        (name, code, (records, delimiter))
        for records, delimiter in batches
        if any(collides(r, delimiter) for r in records)
        for name, code in (("collision, features", features), ("collision, renames", renames))
    ]
    if cases:
        check_generated(cases, tmp_path_factory)


def collides(obj: Any, delimiter: str) -> bool:
    """Whether a key of ``obj`` (recursively through dicts) holds ``delimiter``."""
    if not isinstance(obj, dict):
        return False
    return any(delimiter in k or collides(v, delimiter) for k, v in obj.items())
