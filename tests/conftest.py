"""Shared test set-up: offline Hugging Face libraries and hypothesis profiles.

* Nothing reaches the network: ``HF_HUB_OFFLINE`` and ``TRANSFORMERS_OFFLINE`` are set
  before any test module imports transformers, datasets or trl.
* hypothesis runs the ``default`` profile (200 examples, no deadline, because the CPUs are
  shared and a deadline makes timing-dependent failures); ``HYPOTHESIS_PROFILE=quick``
  runs 20 examples. A test that asks for many more examples sets them itself and is
  marked ``@pytest.mark.slow``.
* Slow tests (longer than about 10 s) carry ``@pytest.mark.slow`` (registered in
  ``pyproject.toml``); the default run deselects them with ``-m "not slow"``.

Fixtures live in the test files that use them, not here.
"""

from __future__ import annotations

import os

from hypothesis import settings

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("quick", max_examples=20, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
