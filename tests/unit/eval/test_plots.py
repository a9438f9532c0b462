"""PNG plots of evaluations: the comparison chart keeps every model name whole, so fine-tunes of one base differ."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from localft.eval.plots import plot_comparison, wrap_name

TWO_FINE_TUNES = [
    "ft:smollm2-135m-instruct:localft:tweets:QqSTSsaH",
    "ft:smollm2-135m-instruct:localft:tweets:Zx81KpLm",
]


@pytest.mark.parametrize(
    "name",
    [*TWO_FINE_TUNES, "minilm-l6", "/tmp/models/a-very-long-folder-name-without-breaks-in-it-at-all", "x" * 60],
)
def test_wrapped_names_keep_every_character_within_the_width(name: str) -> None:
    wrapped = wrap_name(name, width=24)
    assert wrapped.replace("\n", "") == name
    assert all(0 < len(line) <= 24 for line in wrapped.split("\n"))


def test_comparison_labels_tell_two_fine_tunes_of_one_base_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    save = plt.Figure.savefig

    def capture(fig: plt.Figure, path: Path, **kwargs: object) -> None:
        seen.append([tick.get_text() for tick in fig.axes[0].get_xticklabels()])
        save(fig, path, **kwargs)

    monkeypatch.setattr(plt.Figure, "savefig", capture)
    names = [*TWO_FINE_TUNES, "tfidf-logreg"]
    path = plot_comparison(names, [0.79, 0.81, 0.7], "accuracy", tmp_path / "compare.png", "on test")
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"
    labels = seen[0]
    assert len(set(labels)) == 3
    assert [label.replace("\n", "") for label in labels] == names
