"""`/v1/chat/completions`: answers from base models, fine-tuned models and checkpoints."""
