from __future__ import annotations

import pytest

pytestmark = pytest.mark.unit


def test_torch_is_the_pinned_cpu_build() -> None:
    # A CUDA build here means the pin failed and pulled several GB of unusable libraries.
    import torch

    assert torch.__version__.startswith("2.13.0")
    assert torch.version.cuda is None
