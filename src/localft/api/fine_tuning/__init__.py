"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, pause and resume jobs; their events and checkpoints."""
