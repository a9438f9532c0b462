"""The legacy openai==0.28.1 fine-tuning tutorial end to end against a localft server with a worker.

Run with PYTHONPATH=.venv-legacy: `python tutorial_finetune.py BASE_URL TRAIN_JSONL BASE_MODEL`. Prints JSON.
"""

import base64
import json
import sys
import time

import openai

base_url, train_path, base_model = sys.argv[1:4]
openai.api_base = base_url
openai.api_key = "sk-anything"
out = {}

with open(train_path, "rb") as handle:
    uploaded = openai.File.create(file=handle, purpose="fine-tune")
job = openai.FineTuningJob.create(
    training_file=uploaded.id, model=base_model, hyperparameters={"n_epochs": 1, "batch_size": 4}
)
deadline = time.time() + 300
while (job := openai.FineTuningJob.retrieve(job.id)).status not in ("succeeded", "failed") and time.time() < deadline:
    time.sleep(0.1)
out["status"] = job.status
out["error"] = job.error
out["fine_tuned_model"] = job.fine_tuned_model
result = openai.File.download(job.result_files[0])
out["result_header"] = base64.b64decode(result).decode().splitlines()[0]
answer = openai.ChatCompletion.create(
    model=job.fine_tuned_model,
    messages=[{"role": "user", "content": "the flight was great thanks"}],
    temperature=0,
    max_tokens=3,
)
out["answer"] = answer.choices[0].message.content
deleted = openai.Model.delete(job.fine_tuned_model)
out["deleted"] = {"id": deleted.id, "deleted": deleted.deleted}
out["models_after_delete"] = [m.id for m in openai.Model.list().data]
print(json.dumps(out))
