"""The README's example is real code: it runs and prints what it claims."""

import ast
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_commands_and_example():
    text = README.read_text()
    assert "make run" in text and "make test" in text
    (example,) = re.findall(r"```python\n(.*?)```", text, re.S)[:1]
    assert len(example.strip().splitlines()) <= 30
    done = subprocess.run([sys.executable, "-c", example], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    first, second = done.stdout.decode().splitlines()[:2]
    # The example's two sessions get different answers: the model means something.
    quiet, noisy = ast.literal_eval(first)
    assert quiet["alert"] is False and quiet["risk"] < 0.1
    assert noisy["alert"] is True and noisy["risk"] > 0.9
    assert second.startswith("batch_size=2")


def test_readme_engine_example_runs_after_the_first():
    first, engine = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[:2]
    assert "BatchEngine" in engine
    done = subprocess.run([sys.executable, "-c", first + engine], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    output, errors = done.stdout.decode().splitlines()[-2:]
    assert output.startswith('b\'{"risk":') and output.endswith("\\n'")
    assert errors.startswith("[ErrorRow(line=2, raw=b'{\"bytes\": '") and "step='parse'" in errors
