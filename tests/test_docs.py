"""Every public name is in the API reference."""

from pathlib import Path

import skfal

API = Path(__file__).resolve().parent.parent / "docs" / "api.rst"


def test_every_public_name_is_documented():
    listed = {line.strip() for line in API.read_text().splitlines()}
    missing = [
        name for name in skfal.__all__ if name != "__version__" and name not in listed
    ]
    assert not missing, f"add {missing} to docs/api.rst"
