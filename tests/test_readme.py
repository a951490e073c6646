"""The README's Python example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python example"
    for block in blocks:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)
    sampler = namespace["sampler"]
    assert sampler.sample_indices_.shape == (100,)
    assert set(sampler.communication_) == {
        "r_factor",
        "combined_r",
        "scores",
        "selection",
    }
