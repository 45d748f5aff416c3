"""Fixtures of the trust tests (defined once in tests/support/trust_fixtures.py)."""

from support.trust_fixtures import *  # noqa: F403
