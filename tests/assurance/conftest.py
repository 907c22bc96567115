"""Fixtures of the assurance tests: a real recorder process (``recorder_factory``) and a real
index in a temp folder with the product's own CLI against it (``store``)."""

from __future__ import annotations

from tests.compliance.conftest import store  # noqa: F401 - shared fixture
from tests.integration.conftest import recorder_factory  # noqa: F401 - shared fixture
