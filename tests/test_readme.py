"""The README's Python example runs as written."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)
    reg, sampler = namespace["reg"], namespace["sampler"]
    assert reg.n_queries_ == 100
    assert np.allclose(reg.coef_, np.arange(1, 6), atol=0.3)
    assert sampler.sample_indices_.shape == (100,)
    assert {"r_factor", "scores", "selection", "masked_system"} <= set(
        reg.communication_
    )
