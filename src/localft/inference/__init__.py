"""Inference: chat requests answered by base models and fine-tuned checkpoints. No HTTP and no database here.

engine.py          InferenceEngine.chat: scored labels for classifiers, enum answers, free generation
types.py           requests and answers (ChatRequest, ChatResult, ModelArtifact)
models.py          what a model id loads, and the memory-bounded LRU cache of weights and shared-base adapters
prompt.py          the prompt prefix requests share, and the answer still to write after a partial one
choices.py         from a distribution over answers to OpenAI-shaped choices and logprobs
generate.py        free generation (temperature, top_p, n, max_tokens, stop, seed)
precision.py       bf16 or fp32 weights, and where int8 applies
batching.py        concurrent requests combined into batches
compute_thread.py  the one thread that runs every forward pass
"""
