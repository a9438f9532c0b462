"""Deduplication, diversity, example parsing and the label prompt's per-text shuffle."""

from __future__ import annotations

from localft.labeling.dedup import Deduplicator, diversity
from localft.labeling.labeler import label_request, shuffled
from localft.labeling.synth import parse_examples


def test_exact_and_near_duplicates_are_counted_separately() -> None:
    dedup = Deduplicator()
    kept = [
        t
        for t in [
            "How do I download my payslip for March?",
            "how do i download my payslip for march",  # exact after normalisation
            "How do I download my payslips for March?",  # near duplicate
            "Can I book two days of holiday next week?",
        ]
        if dedup.add(t)
    ]
    assert kept == ["How do I download my payslip for March?", "Can I book two days of holiday next week?"]
    assert (dedup.exact, dedup.near) == (1, 1)


def test_diversity_ranks_varied_texts_above_repetitive_ones() -> None:
    varied = diversity(["book a holiday in june", "my payslip is missing", "i feel sick today", "who is my manager"])
    same = diversity(["book a holiday in june", "book a holiday in july", "book a holiday in may", "book a holiday"])
    assert varied.distinct_2 > same.distinct_2
    assert varied.mean_similarity < same.mean_similarity
    assert varied.n_texts == 4


def test_parse_examples_strips_numbering_and_drops_noise() -> None:
    answer = '1. Where is my payslip?\n- "Can I see my salary slip"\n\n2) ok\nget_payslip\n* Payslip for May please'
    assert parse_examples(answer, "get_payslip") == [
        "Where is my payslip?",
        "Can I see my salary slip",
        "Payslip for May please",
    ]


def test_options_are_shuffled_per_text_but_stable_across_runs() -> None:
    labels = [f"label_{i}" for i in range(8)]
    orders = {tuple(shuffled(labels, f"text {i}", seed=0, round_=0)) for i in range(20)}
    assert len(orders) > 1  # position bias is spread across texts
    assert shuffled(labels, "text 1", 0, 0) == shuffled(labels, "text 1", 0, 0)  # resume hits the cache
    assert any(shuffled(labels, f"text {i}", 0, 0) != shuffled(labels, f"text {i}", 0, 1) for i in range(10))
    body = label_request("where is my payslip", labels, model="teacher")
    assert body["messages"][1] == {"role": "user", "content": "where is my payslip"}
    system = body["messages"][0]["content"]
    assert all(f"- {label}" in system for label in labels)
