"""Deciding among scored answers: argmax, seeded sampling, top_p, OpenAI-shaped logprobs, JSON schema enums."""

import json
import math

import pytest

from localft.errors import InvalidRequestError
from localft.inference.choices import (
    Distribution,
    coerce_json,
    json_choice,
    pick,
    rng_for,
    single_choices,
    threshold_labels,
)
from localft.inference.types import ChatRequest

MESSAGES = [{"role": "user", "content": "x"}]


def dist() -> Distribution:
    return Distribution.from_scores(["a", "b", "c"], [" a", " b", " c"], [-1.0, -2.0, -5.0])


def test_distribution_normalises_to_one() -> None:
    d = dist()
    assert math.isclose(sum(d.probs.values()), 1.0, abs_tol=1e-12)
    assert d.probs["a"] > d.probs["b"] > d.probs["c"]


def test_temperature_zero_is_argmax_for_every_choice() -> None:
    choices = single_choices(dist(), ChatRequest(MESSAGES, temperature=0, n=5))
    assert [c.content for c in choices] == [" a"] * 5


def test_sampling_is_seeded_and_follows_probabilities() -> None:
    request = ChatRequest(MESSAGES, temperature=1.0, n=400, seed=7)
    first = [c.content for c in single_choices(dist(), request)]
    assert first == [c.content for c in single_choices(dist(), request)]
    share_a = first.count(" a") / len(first)
    assert 0.6 < share_a < 0.85  # p(a) = 0.72
    assert {" a", " b"} <= set(first)


def test_top_p_keeps_only_the_nucleus() -> None:
    request = ChatRequest(MESSAGES, temperature=1.0, top_p=0.5, seed=1)
    rng = rng_for(request)
    assert {pick(dist(), request, rng) for _ in range(200)} == {0}


def test_logprobs_list_labels_as_alternatives() -> None:
    (choice,) = single_choices(dist(), ChatRequest(MESSAGES, temperature=0, logprobs=True, top_logprobs=2))
    assert choice.logprobs is not None
    (token,) = choice.logprobs
    assert token.token == " a"
    assert [t.token for t in token.top_logprobs] == [" a", " b"]
    assert math.isclose(token.logprob, math.log(choice.label_probs["a"]))  # type: ignore[index]


def test_json_choice_finds_enum_at_any_depth() -> None:
    schema = {
        "type": "object",
        "properties": {
            "reason": {"type": "string"},
            "result": {"type": "object", "properties": {"label": {"enum": ["pos", "neg"]}}},
        },
        "required": ["result"],
    }
    found = json_choice({"type": "json_schema", "json_schema": {"name": "c", "schema": schema}})
    assert found is not None
    assert found.values == ["pos", "neg"]
    assert json.loads(found.render("neg")) == {"result": {"label": "neg"}}
    assert json_choice({"type": "json_object"}) is None
    top = json_choice({"type": "json_schema", "json_schema": {"schema": {"enum": [1, 2]}}})
    assert top is not None and top.render(2) == "2"


def test_json_schema_without_schema_is_a_clear_error() -> None:
    with pytest.raises(InvalidRequestError) as err:
        json_choice({"type": "json_schema", "json_schema": {"name": "x"}})
    assert err.value.param == "response_format"


def test_coerce_json() -> None:
    assert coerce_json('Sure: {"a": 1} done') == '{"a": 1}'
    assert json.loads(coerce_json("plain words")) == {"answer": "plain words"}


def test_threshold_labels_always_a_valid_set() -> None:
    labels = ["toxic", "insult", "threat"]
    assert threshold_labels(labels, [0.9, 0.2, 0.6], [0.5, 0.5, 0.7], "none") == ["toxic"]
    assert threshold_labels(labels, [0.1, 0.2, 0.3], [], "none") == ["none"]
    assert threshold_labels(labels, [0.1, 0.4, 0.3], [], None) == ["insult"]
