"""Label scoring with a shared prompt KV cache equals the brute-force sum of token log-probabilities."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from localft.base_models import scoring
from localft.base_models.scoring import build_row, prefix_cache, score_rows
from localft.base_models.templates import render_prompt
from localft.inference.prompt import shared_prefix_text

torch.set_num_threads(1)  # tiny models: a second thread only adds synchronisation on a busy machine


def brute_force(model: torch.nn.Module, prompt_ids: list[int], candidate: list[int]) -> float:
    ids = torch.tensor([prompt_ids + candidate])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
    start = len(prompt_ids)
    return float(sum(logprobs[start - 1 + j, tok] for j, tok in enumerate(candidate)))


def test_cached_scoring_matches_full_forward_passes(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    prompts = [
        render_prompt(tokenizer, [{"role": "user", "content": text}], "model")
        for text in ("the flight was great thanks", "bag lost")
    ]
    answers = ["positive<|im_end|>", "negative<|im_end|>", "a neutral question<|im_end|>"]
    rows = [build_row(tokenizer, p, answers) for p in prompts]
    batched = score_rows(model, rows, tokenizer.pad_token_id, "cpu")
    for row, scores in zip(rows, batched, strict=True):
        expected = [brute_force(model, row.prompt_ids, cand) for cand in row.candidates]
        assert scores == pytest.approx(expected, abs=1e-4)
        assert score_rows(model, [row], tokenizer.pad_token_id, "cpu")[0] == pytest.approx(expected, abs=1e-4)


def test_rows_beyond_the_logits_budget_are_scored_in_several_passes(
    tiny_causal_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    answers = [f"label {i}<|im_end|>" for i in range(7)]
    rows = [
        build_row(tokenizer, render_prompt(tokenizer, [{"role": "user", "content": text}], "model"), answers)
        for text in ("my bag", "a much longer message about the lost bag and the gate", "ok")
    ]
    # "label 0" ... "label 6" share their start: it is fed once per prompt, as one branch of the prefix tree.
    assert scoring.fed_count(rows[0]) < sum(len(c) - 1 for c in rows[0].candidates)
    whole = score_rows(model, rows, tokenizer.pad_token_id, "cpu")
    passes = []
    monkeypatch.setattr(scoring, "_score_batch", _counting(scoring._score_batch, passes))
    monkeypatch.setattr(scoring, "MAX_LOGITS", 1)  # every row alone, each still over the budget
    split = score_rows(model, rows, tokenizer.pad_token_id, "cpu")
    assert passes == [1, 1, 1]
    for alone, together in zip(split, whole, strict=True):
        assert alone == pytest.approx(together, abs=1e-5)
    for row, scores in zip(rows, whole, strict=True):
        assert scores == pytest.approx([brute_force(model, row.prompt_ids, c) for c in row.candidates], abs=1e-4)


def _counting(score_batch, passes):  # type: ignore[no-untyped-def]
    def wrapped(model, rows, *args):  # type: ignore[no-untyped-def]
        passes.append(len(rows))
        return score_batch(model, rows, *args)

    return wrapped


def test_build_row_shares_only_common_tokens(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    prompt = render_prompt(tokenizer, [{"role": "user", "content": "x"}], "model")
    row = build_row(tokenizer, prompt, ["positive", "positive negative"])
    full = tokenizer(prompt.text + "positive negative", add_special_tokens=False)["input_ids"]
    assert row.prompt_ids + row.candidates[1] == full
    assert all(row.candidates)


def test_cached_shared_prefix_gives_the_same_scores(tiny_causal_lm: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    system = {"role": "system", "content": "classify the sentiment of this tweet"}
    conversations = [[system, {"role": "user", "content": t}] for t in ("the flight was great", "my bag was lost")]
    answers = ["positive<|im_end|>", "negative<|im_end|>"]
    rows = []
    for messages in conversations:
        prompt = render_prompt(tokenizer, messages, "model")
        rows.append(build_row(tokenizer, prompt, answers, shared_prefix_text(tokenizer, messages, "model")))
    assert rows[0].shared_prefix > 0 and rows[0].shared_prefix == rows[1].shared_prefix
    skip = rows[0].shared_prefix
    cache = prefix_cache(model, rows[0].prompt_ids[:skip], "cpu")
    with_prefix = score_rows(model, rows, tokenizer.pad_token_id, "cpu", (skip, cache))
    again = score_rows(model, rows, tokenizer.pad_token_id, "cpu", (skip, cache))  # the cache is not consumed
    for row, scores, repeat in zip(rows, with_prefix, again, strict=True):
        expected = [brute_force(model, row.prompt_ids, cand) for cand in row.candidates]
        assert scores == pytest.approx(expected, abs=1e-4) and repeat == pytest.approx(expected, abs=1e-4)


def test_rows_run_in_passes_grouped_by_length_and_keep_their_order(
    tiny_causal_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm)
    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm).eval()
    long = "a much longer message about the lost bag, the gate, the crew and the refund that never came"
    rows = [
        build_row(tokenizer, render_prompt(tokenizer, [{"role": "user", "content": text}], "model"), ["yes", "no"])
        for text in ("my bag", long, "my bag")
    ]
    passes: list[int] = []
    monkeypatch.setattr(scoring, "_score_batch", _counting(scoring._score_batch, passes))
    monkeypatch.setattr(scoring, "PASS_OVERHEAD", 0)
    grouped = score_rows(model, rows, tokenizer.pad_token_id, "cpu")
    assert passes == [2, 1]  # the short prompts together, the long one alone
    passes.clear()
    monkeypatch.setattr(scoring, "PASS_OVERHEAD", 10**6)
    together = score_rows(model, rows, tokenizer.pad_token_id, "cpu")
    assert passes == [3]
    for row, a, b in zip(rows, grouped, together, strict=True):
        expected = [brute_force(model, row.prompt_ids, c) for c in row.candidates]
        assert a == pytest.approx(expected, abs=1e-4) and b == pytest.approx(expected, abs=1e-4)


def test_encoder_logits_do_not_depend_on_the_texts_batched_together(tiny_encoder: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_encoder, num_labels=3).eval()
    texts = ["ok", "the flight was late and the bag was lost and nobody called back", "great crew", "bad"]
    ids = tokenizer(texts, truncation=True, max_length=64)["input_ids"]
    batched = scoring.encoder_logits(model, ids, "cpu", tokenizer.pad_token_id or 0)
    alone = torch.cat([scoring.encoder_logits(model, [i], "cpu", 0) for i in ids])
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-5)
    assert batched.shape == (4, 3) and not torch.equal(batched[0], batched[1])
