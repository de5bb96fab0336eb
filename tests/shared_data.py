"""Where the shared routing corpus lies (beside the repository, also in CI), and a mark for tests that read it."""

from __future__ import annotations

import os

import pytest

DATA = "/work/shared/data/routing"
needs_data = pytest.mark.skipif(not os.path.isdir(DATA), reason="shared routing corpus not available")
