"""The PyTorch runtime's own unit tests: skipped where torch is not installed (the core
and other frameworks' test environments), run in the pytorch one."""

import pytest

pytest.importorskip("torch")
