"""Puts the project's parts on sys.path the way Errbot does at run time, so tests can import them directly."""

import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
for path in (ROOT, ROOT / "backends" / "tgrelay", ROOT / "plugins" / "relay", ROOT / "storage"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
