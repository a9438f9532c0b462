"""Reading a teacher's answer as one label of a known set, or as nothing.

Teachers answer in many shapes: `negative`, `"Negative."`, `Label: negative`, `{"action": "get_payslip"}`, a JSON
answer inside a ```json fence, or a label followed by an explanation. `parse_label` accepts those and returns the
label exactly as the label set spells it. Anything else (a label not in the set, two different labels, prose) is
`None`, so the caller retries it and finally reports it: a guess is never kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence

# Keys a JSON answer commonly puts its label under, tried before any other string value.
_LABEL_KEYS = ("label", "category", "class", "intent", "action", "answer", "sentiment", "topic")
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_WRAPPING = " \t\r\n\"'`*.,;:!?()[]<>"


def normalize(text: str) -> str:
    """Compare labels loosely: case, surrounding punctuation and `_`/`-`/space differences do not matter."""
    return re.sub(r"[\s_\-]+", " ", text.strip(_WRAPPING).casefold()).strip()


def parse_label(answer: str, labels: Sequence[str]) -> str | None:
    """The label `answer` names, spelled as in `labels`; None when it names none, or more than one, of them."""
    by_norm = {normalize(label): label for label in labels}
    found = {by_norm[n] for n in map(normalize, _candidates(answer)) if n in by_norm}
    return found.pop() if len(found) == 1 else None


def _candidates(answer: str) -> Iterator[str]:
    """Readings of the answer, most literal first. A label matching any one reading is the answer."""
    text = answer.strip()
    yield from _json_strings(text)
    if _json_strings(text):
        return  # a JSON answer is judged by its values only, not by the words around it
    yield text
    first_line = text.splitlines()[0] if text else ""
    yield first_line
    if ":" in first_line:  # "Label: negative", "Category - Answer: refund"
        yield first_line.rsplit(":", 1)[1]
    # A label followed by an explanation: "negative. The customer complains about ..." or "negative - because".
    head = re.split(r"[.,;\n]| - | because ", first_line, maxsplit=1)[0]
    yield head


def _json_strings(text: str) -> list[str]:
    """String values of a JSON object or array in the answer (fenced or bare), label-like keys first."""
    for blob in [*_FENCE.findall(text), *_OBJECT.findall(text), text]:
        try:
            value = json.loads(blob)
        except (json.JSONDecodeError, TypeError):
            continue
        if isinstance(value, dict):
            keyed = [value[k] for k in _LABEL_KEYS if isinstance(value.get(k), str)]
            if keyed:
                return [keyed[0]]
            return [v for v in value.values() if isinstance(v, str)]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)][:1]
        if isinstance(value, str):
            return [value]
    return []
