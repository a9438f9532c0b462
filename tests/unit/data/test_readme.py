"""The README's `localft prepare` examples are real: each command is run and must print exactly what is shown."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from localft.cli import main

REPO = Path(__file__).resolve().parents[3]
SECTION = "## Preparing and validating data"


def readme_prepare_examples() -> list[tuple[str, str]]:
    """(command, output) of every successful `localft prepare` console block in the data section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    examples = []
    for block in re.findall(r"```console\n(.*?)```", section, flags=re.S):
        command, _, output = block.partition("\n")
        while command.endswith("\\"):
            more, _, output = output.partition("\n")
            command = command[:-1] + more
        if command.startswith("$ localft prepare") and " -o " in command:
            examples.append((command.removeprefix("$ localft "), output))
    return examples


EXAMPLES = readme_prepare_examples()


def test_the_readme_shows_the_three_tutorial_preparations() -> None:
    assert len(EXAMPLES) == 3


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=["airline", "jigsaw", "legal"])
def test_readme_prepare_output_is_what_the_command_prints(
    command: str, expected: str, datasets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the README's paths are relative to the repository root
    args = shlex.split(command)
    out = args.index("-o") + 1
    args[out] = str(tmp_path / Path(args[out]).name)  # write into tmp, not the working tree
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    printed = result.output.replace(str(tmp_path), "data")
    assert printed == expected
