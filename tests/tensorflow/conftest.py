"""The TensorFlow runtime's suites: only where TensorFlow is installed (nox -s tensorflow);
the other environments skip the whole folder."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")
