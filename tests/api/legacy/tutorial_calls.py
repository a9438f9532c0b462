"""The legacy openai==0.28.1 calls of the fine-tuning tutorials, run against a localft server.

Run in a subprocess with PYTHONPATH=.venv-legacy: `python tutorial_calls.py BASE_URL TRAIN_JSONL CHAT_MODEL`.
Prints one JSON object with what each call returned; the test asserts on it.
"""

import json
import sys
import time

import openai

base_url, train_path, chat_model = sys.argv[1:4]
openai.api_base = base_url
openai.api_key = "sk-anything"
out = {"version": openai.version.VERSION}

with open(train_path, "rb") as handle:
    uploaded = openai.File.create(file=handle, purpose="fine-tune")
out["file"] = {
    "id": uploaded.id,
    "object": uploaded.object,
    "filename": uploaded.filename,
    "type": type(uploaded).__name__,
}
with open(train_path, "rb") as handle:
    out["download_matches"] = openai.File.download(uploaded.id) == handle.read()
out["file_list_ids"] = [f.id for f in openai.File.list().data]

job = openai.FineTuningJob.create(training_file=uploaded.id, model="gpt-3.5-turbo", suffix="legacy")
out["job"] = {"id": job.id, "object": job.object, "status": job.status, "type": type(job).__name__}
deadline = time.time() + 30
while openai.FineTuningJob.retrieve(job.id).status == "validating_files" and time.time() < deadline:
    time.sleep(0.05)
out["retrieved_status"] = openai.FineTuningJob.retrieve(job.id).status
second = openai.FineTuningJob.create(training_file=uploaded.id, model="gpt-3.5-turbo")
listed = openai.FineTuningJob.list(limit=1)
out["list_first_page"] = {"ids": [j.id for j in listed.data], "has_more": listed.has_more}
out["list_all_ids"] = [j.id for j in openai.FineTuningJob.auto_paging_iter(limit=1)]
out["events"] = [e.message for e in openai.FineTuningJob.list_events(id=job.id, limit=10).data]
out["cancelled_status"] = openai.FineTuningJob.cancel(job.id).status
openai.FineTuningJob.cancel(second.id)

out["model_ids"] = [m.id for m in openai.Model.list().data]
try:
    openai.Model.delete("smollm2-135m-instruct")
except openai.error.InvalidRequestError as exc:
    out["delete_base_error"] = {"http_status": exc.http_status, "code": exc.code, "message": str(exc)}
try:
    openai.File.retrieve("file-missing")
except openai.error.InvalidRequestError as exc:
    out["missing_file_error"] = {"http_status": exc.http_status, "code": exc.code}

chat = openai.ChatCompletion.create(
    model=chat_model, messages=[{"role": "user", "content": "classify this tweet"}], max_tokens=2, temperature=0
)
out["chat"] = {
    "object": chat.object,
    "content_type": type(chat.choices[0].message.content).__name__,
    "finish_reason": chat.choices[0].finish_reason,
    "total_tokens": chat.usage.total_tokens,
}
print(json.dumps(out))
