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


def test_every_readme_command_block_runs_in_ci():
    # .ci/run runs the commands of each README block it names
    # (``readme_commands NAME`` reads the block between <!-- NAME:start -->
    # and <!-- NAME:end -->) in a new virtual environment. A command block
    # outside those markers, or in a block CI does not name, would be a
    # command nobody runs: the `pip install ".[docs]" && sphinx-build ...`
    # line once failed on a fresh environment for that reason.
    text = README.read_text()
    ci = (README.parent / ".ci" / "run").read_text()
    ran = set(re.findall(r"readme_commands (\w+)\)", ci))
    assert {"quickstart", "docs"} <= ran
    regions = []
    for name in sorted(ran):
        start, end = (
            text.find(f"<!-- {name}:start -->"),
            text.find(f"<!-- {name}:end -->"),
        )
        assert 0 <= start < end, f"README.md lacks the <!-- {name}:start/end --> block"
        regions.append((start, end))
    blocks = [m.start() for m in re.finditer(r"^```(?:bash|sh|console)\n", text, re.M)]
    assert len(blocks) >= 2
    for position in blocks:
        line = text.count("\n", 0, position) + 1
        assert any(start < position < end for start, end in regions), (
            f"README.md line {line}: a command block that .ci/run does not run; "
            "put it between <!-- NAME:start --> and <!-- NAME:end --> markers "
            "and add `readme_commands NAME` to .ci/run"
        )
