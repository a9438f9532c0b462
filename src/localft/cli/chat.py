"""`localft chat MODEL "text"`: one chat completion from the shell, with label probabilities on request."""

from __future__ import annotations

import math
from typing import Any

import click

from localft.cli.render import api_errors, base_url_option, json_option, print_json, print_table
from localft.client import connect


@click.command()
@click.argument("model")
@click.argument("text")
@click.option("--system", default=None, help="A system message sent before TEXT.")
@click.option("--probs", is_flag=True, help="Also print the probability of each label (classifiers).")
@click.option("--temperature", type=float, default=0.0, show_default=True)
@click.option("--max-tokens", type=int, default=None, help="Longest answer in tokens (default: the server's).")
@base_url_option
@json_option
def chat(
    model: str,
    text: str,
    system: str | None,
    probs: bool,
    temperature: float,
    max_tokens: int | None,
    base_url: str | None,
    as_json: bool,
) -> None:
    """Send TEXT to MODEL and print the answer.

    \b
    Example:
      localft chat ft:smollm2-135m-instruct:localft:tweets:abcd1234 "my bag was lost" --probs
    """
    messages: list[dict[str, str]] = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": text})
    params: dict[str, Any] = {"model": model, "messages": messages, "temperature": temperature}
    if max_tokens is not None:
        params["max_tokens"] = max_tokens
    if probs:
        params.update(logprobs=True, top_logprobs=20)
    with connect(base_url) as conn, api_errors():
        completion = conn.client.chat.completions.create(**params)
    if as_json:
        print_json(completion)
        return
    choice = completion.choices[0]
    click.echo(choice.message.content or "")
    if probs:
        label_probs = choice_label_probs(choice)
        rows = [{"label": k, "probability": f"{v:.4f}"} for k, v in sorted(label_probs.items(), key=lambda kv: -kv[1])]
        print_table(rows, ("label", "probability"), numeric=("probability",))


def choice_label_probs(choice: Any) -> dict[str, float]:
    """Label probabilities of a choice: localft's `label_probs` extra, else the first token's top logprobs."""
    extra = getattr(choice, "model_extra", None) or {}
    if isinstance(extra.get("label_probs"), dict):
        return {str(k): float(v) for k, v in extra["label_probs"].items()}
    content = choice.logprobs.content if choice.logprobs is not None else None
    if not content:
        return {}
    return {top.token: math.exp(top.logprob) for top in content[0].top_logprobs}
