"""Reading teacher answers as labels: accepted shapes, and answers that must be refused."""

from __future__ import annotations

import pytest

from localft.labeling.answers import parse_label

LABELS = ["get_payslip", "book_holiday", "report_sick", "other"]


@pytest.mark.parametrize(
    "answer",
    [
        "get_payslip",
        "  Get_Payslip.  ",
        '"get_payslip"',
        "get payslip",
        "Label: get_payslip",
        '{"action": "get_payslip"}',
        '{"reason": "asks for salary slip", "label": "get_payslip"}',
        '```json\n{"intent": "get_payslip"}\n```',
        'Sure! {"action": "get_payslip"}',
        "get_payslip. The user wants their salary statement.",
        "**get_payslip**",
        '["get_payslip"]',
    ],
)
def test_accepted_shapes(answer: str) -> None:
    assert parse_label(answer, LABELS) == "get_payslip"


@pytest.mark.parametrize(
    "answer",
    [
        "",
        "payslip please",
        "I am not sure what the user means.",
        '{"action": "send_email"}',
        "get_payslip or book_holiday",
        '{"first": "get_payslip", "second": "book_holiday"}',
    ],
)
def test_refused_answers(answer: str) -> None:
    assert parse_label(answer, LABELS) is None


def test_a_json_answer_is_judged_by_its_values_only() -> None:
    assert parse_label('{"action": "book_holiday"} although get_payslip is possible', LABELS) == "book_holiday"


def test_numeric_labels_keep_their_spelling() -> None:
    assert parse_label("1", ["0", "1"]) == "1"
    assert parse_label('{"label": "0"}', ["0", "1"]) == "0"
