"""localft: a self-hosted, OpenAI-compatible fine-tuning server for text classification.

The package is laid out by noun:

    data/       CSV -> chat JSONL preparation, validation, labels
    training/   fine-tuning engine (LoRA on causal LMs, encoder + head); knows nothing of HTTP or the DB
    inference/  model catalog, loading and caching, classification and generation
    jobs/       job store (SQLite/PostgreSQL) and the worker that runs training jobs
    api/        the OpenAI-compatible HTTP server
    eval/       metrics, reports and model comparison
    labeling/   teacher labelling, synthetic examples and distillation
    web/        the dashboard served at /
    cli/        the `localft` command
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
