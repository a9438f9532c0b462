"""Teacher labelling, synthetic examples and distillation through any OpenAI-compatible endpoint.

    labeler.py   texts -> labels, options shuffled per text, answers checked against the label set
    answers.py   a teacher's answer (plain or JSON) -> one label of the set, or None
    synth.py     label descriptions -> N distinct examples per label
    dedup.py     exact / near-duplicate removal and a diversity report
    distill.py   teacher labels -> fine-tuned student -> both scored side by side (accuracy, latency, cost)
    inputs.py    texts and label sets read from CSV/TSV/JSONL and label files

Requests go through `localft.remote` (concurrency, retries with backoff, resume cache, counts).
"""

from localft.labeling.labeler import label_texts
from localft.labeling.synth import synthesize

__all__ = ["label_texts", "synthesize"]  # distillation: localft.labeling.distill.distill
