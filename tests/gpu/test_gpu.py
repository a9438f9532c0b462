"""The GPU tier (`pytest -m gpu`, `make test-gpu`, `scripts/gpu-check`): the whole flow through the API on CUDA,
asserting that the GPU really did the work. Skipped, with the reason, where torch sees no GPU.

Upload, a LoRA job on SmolLM2 and encoder jobs (single- and multi-label) with validation files, checkpoints, a
server killed mid-job that resumes on the GPU, chat with label probabilities, and a job across every visible GPU.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch

from localft.api.server import EmbeddedServer
from localft.devices import gpu_count
from localft.settings import Settings

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason=f"needs CUDA: torch {torch.__version__} sees no GPU (a CPU build, or no driver)",
    ),
]

SENTIMENT = {
    "positive": ["the flight was great thanks", "lovely crew and an early landing", "best service in years"],
    "negative": ["my bag was lost again", "two hours on the tarmac, awful", "rude agent at the gate"],
    "neutral": ["what time does boarding start", "which terminal for Boston", "is there wifi on this route"],
}
MULTI = [
    ("my bag was lost and the seat was broken", "bags,seats"),
    ("the seat would not recline", "seats"),
    ("they lost my suitcase", "bags"),
    ("great flight, no complaints", "none"),
]


def _write(path: Path, rows: list[tuple[str, str]], system: str) -> Path:
    import json

    with path.open("w") as out:
        for i, (text, answer) in enumerate(rows):
            messages = [
                {"role": "system", "content": system},
                {"role": "user", "content": f"{text} ({i})"},
                {"role": "assistant", "content": answer},
            ]
            out.write(json.dumps({"messages": messages}) + "\n")
    return path


def _sentiment(path: Path, repeat: int) -> Path:
    rows = [(t, label) for _ in range(repeat) for label, texts in SENTIMENT.items() for t in texts]
    return _write(path, rows, "Classify the sentiment: negative, neutral, positive.")


@pytest.fixture
def gpu_server(settings: Settings) -> Iterator[EmbeddedServer]:
    torch.cuda.reset_peak_memory_stats()
    with EmbeddedServer(Settings.from_env(home=settings.home, device="cuda"), lease_seconds=5.0) as server:
        yield server


def _client(server: EmbeddedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="local", max_retries=0)


def _upload(client: openai.OpenAI, path: Path) -> str:
    return client.files.create(file=path.open("rb"), purpose="fine-tune").id


def _messages(client: openai.OpenAI, job_id: str) -> list[str]:
    return [e.message for e in client.fine_tuning.jobs.list_events(job_id, limit=500)][::-1]


def _wait_for_status(client: openai.OpenAI, job_id: str, statuses: set[str], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while (job := client.fine_tuning.jobs.retrieve(job_id)).status not in statuses:
        assert time.monotonic() < deadline, _messages(client, job_id)[-5:]
        time.sleep(0.2)
    return job


def _train(client: openai.OpenAI, model: str, train: Path, valid: Path, **hp: Any) -> Any:
    job = client.fine_tuning.jobs.create(
        model=model, training_file=_upload(client, train), validation_file=_upload(client, valid), hyperparameters=hp
    )
    done = _wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=600)
    messages = _messages(client, job.id)
    assert done.status == "succeeded", (done.error, messages[-10:])
    name = torch.cuda.get_device_name(0)
    assert any(f"bf16 autocast on cuda, {name}" in m or f"on cuda:0, {name}" in m for m in messages), messages
    assert any(m.startswith("GPU memory:") for m in messages), messages
    assert client.fine_tuning.jobs.checkpoints.list(job.id).data
    return done, messages


def test_the_server_says_it_computes_on_the_gpu(gpu_server: EmbeddedServer) -> None:
    compute = httpx.get(f"{gpu_server.root_url}/health").json()["compute"]
    assert compute["device"] == "cuda" and compute["name"] == torch.cuda.get_device_name(0)
    assert compute["precision"] == ("bf16" if torch.cuda.is_bf16_supported() else "fp32")


def test_a_lora_job_on_smollm2_trains_and_answers_on_the_gpu(gpu_server: EmbeddedServer, tmp_path: Path) -> None:
    client = _client(gpu_server)
    done, messages = _train(
        client, "smollm2-135m-instruct", _sentiment(tmp_path / "t.jsonl", 6),
        _sentiment(tmp_path / "v.jsonl", 1), n_epochs=2, lora_rank=16,
    )  # fmt: skip
    assert any("full validation accuracy=" in m for m in messages)
    assert torch.cuda.max_memory_allocated() > 100 * 2**20  # the weights and activations lived on the GPU
    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "system", "content": "Classify the sentiment: negative, "
        "neutral, positive."}, {"role": "user", "content": "my bag was lost again"}], logprobs=True, top_logprobs=3,
    )  # fmt: skip
    choice = reply.choices[0]
    assert choice.message.content in SENTIMENT
    probs = choice.model_dump()["label_probs"]
    assert set(probs) == set(SENTIMENT) and abs(sum(probs.values()) - 1) < 1e-3


def test_encoder_jobs_single_and_multi_label_validate_on_the_gpu(gpu_server: EmbeddedServer, tmp_path: Path) -> None:
    client = _client(gpu_server)
    _train(
        client, "minilm-l6", _sentiment(tmp_path / "t.jsonl", 6), _sentiment(tmp_path / "v.jsonl", 1),
        n_epochs=2,
    )  # fmt: skip
    # Multi-label with a validation file: thresholds tuned from the GPU's logits at each epoch end.
    system = "Label the complaint: bags, seats, or none."
    done, messages = _train(
        client, "minilm-l6", _write(tmp_path / "mt.jsonl", MULTI * 8, system),
        _write(tmp_path / "mv.jsonl", MULTI * 2, system), n_epochs=2,
    )  # fmt: skip
    assert any("full validation exact_match=" in m for m in messages), messages
    reply = client.chat.completions.create(
        model=done.fine_tuned_model, messages=[{"role": "system", "content": system},
        {"role": "user", "content": "the seat was broken"}],
    )  # fmt: skip
    assert reply.choices[0].message.content is not None


@pytest.mark.skipif(gpu_count() < 2, reason="one GPU: a job across several GPUs needs two or more")
def test_a_job_across_every_visible_gpu(gpu_server: EmbeddedServer, tmp_path: Path) -> None:
    client = _client(gpu_server)
    _, messages = _train(
        client, "smollm2-135m-instruct", _sentiment(tmp_path / "t.jsonl", 6),
        _sentiment(tmp_path / "v.jsonl", 1), n_epochs=2, devices=gpu_count(),
    )  # fmt: skip
    assert any(f"on {gpu_count()} data-parallel processes on cuda" in m for m in messages), messages


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_server_killed_mid_job_resumes_it_on_the_gpu(tmp_path: Path) -> None:
    home, port, log = tmp_path / "home", _free_port(), tmp_path / "serve.log"
    env = {**os.environ, "LOCALFT_HOME": str(home), "LOCALFT_PORT": str(port), "LOCALFT_DEVICE": "cuda"}
    url = f"http://127.0.0.1:{port}"

    def serve() -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "localft", "serve", "--lease-seconds", "3"], env=env, stdout=out, stderr=out
            )
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                time.sleep(0.2)
        pytest.fail(log.read_text()[-3000:])

    server = serve()
    try:
        assert "computing on cuda (" in log.read_text()  # the banner
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="local", max_retries=0)
        job = client.fine_tuning.jobs.create(
            model="smollm2-135m-instruct", training_file=_upload(client, _sentiment(tmp_path / "t.jsonl", 20)),
            hyperparameters={"n_epochs": 4, "batch_size": 4},
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while not client.fine_tuning.jobs.checkpoints.list(job.id).data:
            assert time.monotonic() < deadline, _messages(client, job.id)[-5:]
            time.sleep(0.2)
        server.send_signal(signal.SIGKILL)
        server.wait()
        server = serve()
        done = _wait_for_status(client, job.id, {"succeeded", "failed"}, timeout=600)
        messages = _messages(client, job.id)
        assert done.status == "succeeded", (done.error, messages[-10:])
        assert any(m.startswith("Resuming fine-tuning job from checkpoint at step") for m in messages)
        assert sum(f"on cuda:0, {torch.cuda.get_device_name(0)}" in m or "on cuda, " in m for m in messages) == 2
    finally:
        server.kill()
        server.wait()


def test_training_passes_on_the_gpu_attend_through_sdpa_in_bf16(tiny_causal_lm: Path) -> None:
    from localft.training.dataset import ChatEncoder, ChatExample
    from localft.training.lora_causal import CausalLearner
    from localft.training.run import _load_tokenizer
    from localft.training.task import detect_task

    rows = [(t, label) for label, texts in SENTIMENT.items() for t in texts]
    examples = [
        ChatExample([{"role": "user", "content": t}, {"role": "assistant", "content": a}], i)
        for i, (t, a) in enumerate(rows, 1)
    ]
    tokenizer = _load_tokenizer(tiny_causal_lm)
    task = detect_task([ex.answer for ex in examples])
    learner = CausalLearner(tiny_causal_lm, tokenizer, ChatEncoder(tokenizer, "model", 64), task, "cuda")
    assert learner._causal.config._attn_implementation == "sdpa"
    assert {p.device.type for p in learner.model.parameters()} == {"cuda"}
    learner.set_training(True)
    out = learner.loss(learner.make_items(examples))
    out.loss_sum.backward()  # type: ignore[no-untyped-call]
    assert out.loss_sum.device.type == "cuda" and learner._causal.config._attn_implementation == "sdpa"
    frozen = [p for p in learner.model.parameters() if not p.requires_grad]
    assert {p.dtype for p in frozen} == ({torch.bfloat16} if torch.cuda.is_bf16_supported() else {torch.float32})
