"""The `localft` command: a click group with one module per noun.

Subcommands are imported only when invoked, so `localft --help` and light verbs never pay for importing torch.
"""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Any

import click

from localft import __version__

# command name -> "module:attribute" inside localft.cli
COMMANDS: dict[str, str] = {
    "prepare": "data:prepare",
    "validate": "data:validate",
    "serve": "serve:serve",
    "worker": "worker:worker",
    "workers": "worker:workers",
    "models": "models:models",
    "files": "files:files",
    "jobs": "jobs:jobs",
    "chat": "chat:chat",
    "train": "train:train",
    "eval": "evaluate:eval_command",
    "compare": "evaluate:compare",
    "label": "teach:label",
    "synth": "teach:synth",
    "distill": "teach:distill",
}


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in COMMANDS:
            return command
        module_name, attr = COMMANDS[cmd_name].split(":")
        try:
            module = importlib.import_module(f"localft.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a noun not built yet must not break the others
            if exc.name == f"localft.cli.{module_name}":
                return None
            raise
        found: Any = getattr(module, attr)
        return found if isinstance(found, click.Command) else None


def _quiet_model_libraries() -> None:
    """The command's own progress and events are the output: the model libraries' per-load progress bars
    ("Loading weights") and their deprecation notices for their own internals would interleave with them.
    Users who want them back set HF_HUB_DISABLE_PROGRESS_BARS=0 or TRANSFORMERS_VERBOSITY=warning."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for library in ("transformers", "peft", "torch"):
        warnings.filterwarnings("ignore", category=FutureWarning, module=library)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=library)


_quiet_model_libraries()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="localft")
def main() -> None:
    """localft: fine-tune and serve local text classifiers through an OpenAI-compatible API.

    \b
    Quick start:
      localft prepare tweets.csv --text-col text --label-col airline_sentiment -o data/
      localft serve
    """
