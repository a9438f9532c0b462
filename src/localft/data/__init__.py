"""Fine-tuning data: tables in (`readers`), chat or prompt/completion JSONL out (`prepare`, `records`, `sampling`),
and the checks every training file passes (`validate`, `checks`), with `labels`, `tokens`, `budget` and `summary`
as the shared pieces. Nothing here imports torch, HTTP or the job store.
"""
