"""Hypothesis profiles of the property suite, chosen with ``HYPOTHESIS_PROFILE``.

- ``ci`` (default): a few derandomized examples per property, so CI stays fast and stable;
- ``large``: ten times as many, random (a nightly run);
- ``execute``: the ``ci`` examples, each also checked in encrypted execution on a few rows.

Run ``pytest tests/properties --hypothesis-show-statistics`` to see how many cases each
property generated.
"""

from __future__ import annotations

from tests.properties.profiles import load_profile

load_profile()
