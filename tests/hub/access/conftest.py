"""Fixtures of the trust tests (defined once in tests/hub/verify/trust_fixtures.py)."""

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "lerec_trust_fixtures", Path(__file__).parents[1] / "verify" / "trust_fixtures.py")
assert _spec and _spec.loader
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
globals().update({k: v for k, v in vars(_mod).items() if not k.startswith("__")})
