"""Hypothesis profiles: a small ``dev`` default, a larger ``ci`` profile when CI or
KAFKA_REQUIRED is set, and ``explore`` for long local searches (HYPOTHESIS_PROFILE=explore).

Tests that pin ``max_examples`` in their own ``@settings`` keep it; the profile decides for the
rest (the hardening suites)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "ci", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "explore", max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
_CI = bool(os.environ.get("CI") or os.environ.get("KAFKA_REQUIRED"))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _CI else "dev"))
