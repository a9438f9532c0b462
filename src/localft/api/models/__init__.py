"""`/v1/models`: base and fine-tuned models; deleting fine-tuned ones."""
