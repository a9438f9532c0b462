"""Fine-tuning jobs: where they are stored and how they run. No HTTP here, and no torch until a job trains.

schema.py      tables and typed records (files, jobs, events, checkpoints, models)
migrations.py  named, ordered migrations applied once at open
store.py       SQLAlchemy Core over SQLite (WAL) or PostgreSQL; compare-and-set transitions, atomic claim, leases
files.py       file blobs on disk under generated names
intake.py      file validation when a job starts (validating_files -> queued | failed)
registry.py    fine-tuned model ids and what a model id loads
sink.py        the store-backed EventSink handed to the training engine, with a heartbeat thread
results.py     the result CSV of a job
worker.py      claim -> train -> record -> finish; resume after crashes
"""
