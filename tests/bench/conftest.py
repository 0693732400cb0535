import sys
from pathlib import Path

# bench/ is a runnable package at the repo root, not an installed one
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
