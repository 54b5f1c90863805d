"""The shipped completion files are what completion_gen makes of today's command tree:
an option added to a command without regenerating them fails here."""

from __future__ import annotations

import os

import pytest

from conftest import REPO_ROOT
from xdphints_cli.cli.completion_gen import GENERATORS, generate


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_completion_file_is_generated_from_the_cli(name):
    with open(os.path.join(REPO_ROOT, "completions", name)) as f:
        shipped = f.read()
    assert shipped == generate()[name], (
        f"completions/{name} is stale: run python3 -m xdphints_cli.cli.completion_gen completions")
