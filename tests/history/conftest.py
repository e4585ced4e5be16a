"""Make the hand-made runs helper importable from the history tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
