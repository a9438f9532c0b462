"""Scoring classifiers: what each tutorial writes by hand, as a library (the `localft eval`/`compare` commands).

- `metrics`: pure scores (single- and multi-label, confusion matrix, latency), checked against scikit-learn
- `testset`: chat JSONL test sets and how answers become labels
- `runner`: a model over a test set, through any OpenAI-compatible endpoint or in-process
- `report`: one model's report as JSON, Markdown, terminal text and predictions
- `plots`: PNG plots
- `baseline`: TF-IDF + logistic regression
- `compare`: several models side by side (`evaluate_model` for one)

This `__init__` re-exports nothing on purpose: training code imports `localft.eval.metrics` (numpy only) and must
not pull in scikit-learn, matplotlib or the HTTP client.
"""
