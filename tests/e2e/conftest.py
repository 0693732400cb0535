import sys
from pathlib import Path

# `tests.service.support` must import under plain `pytest` too (python -m pytest adds the cwd)
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.service.support import redis_server  # noqa: E402, F401
