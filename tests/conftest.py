import sys
from pathlib import Path

# `tests/reference.py` and friends import as top-level helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent))
