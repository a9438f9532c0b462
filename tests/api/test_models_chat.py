"""`/v1/models` and `/v1/chat/completions` through the openai SDK, with a tiny local model as the base."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import openai
import pytest

from localft.settings import Settings


def test_models_list_and_retrieve(client: openai.OpenAI, tiny_causal_lm: Path) -> None:
    ids = [m.id for m in client.models.list()]
    assert "smollm2-135m-instruct" in ids and "minilm-l6" in ids
    model = client.models.retrieve("smollm2-135m-instruct")
    assert (model.id, model.object, model.owned_by) == ("smollm2-135m-instruct", "model", "localft")
    assert client.models.retrieve("gpt-4o-mini").id == "gpt-4o-mini"  # aliases resolve
    assert client.models.retrieve(str(tiny_causal_lm)).id == str(tiny_causal_lm)  # so do local folders
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("ft:smollm2-135m-instruct:localft::nothere1")
    assert missing.value.code == "model_not_found"


def test_base_models_say_their_family_size_and_installed_state(
    client: openai.OpenAI, tiny_encoder: Path, tmp_path: Path
) -> None:
    listed = {m.id: m.model_dump() for m in client.models.list()}
    smollm = listed["smollm2-135m-instruct"]
    assert (smollm["family"], smollm["params"], smollm["installed"], smollm["source"]) == (
        "causal_lm",
        "135M",
        True,
        "builtin",
    )
    # No placeholder date: the created time is when the weights were installed, 0 where they are not.
    assert smollm["created"] != 1_767_225_600 and smollm["created"] > 0
    assert listed["minilm-l6"]["family"] == "encoder"
    assert all(m["created"] == 0 for m in listed.values() if m.get("installed") is False)
    # A local folder is listed once a job has trained it, with its own family and size.
    assert str(tiny_encoder) not in listed
    train = tmp_path / "train.jsonl"
    line = '{"messages": [{"role": "user", "content": "text %d"}, {"role": "assistant", "content": "%s"}]}'
    train.write_text("\n".join(line % (i, "ab"[i % 2]) for i in range(10)) + "\n")
    file = client.files.create(file=train.open("rb"), purpose="fine-tune")
    client.fine_tuning.jobs.create(model=str(tiny_encoder), training_file=file.id)
    folder = {m.id: m.model_dump() for m in client.models.list()}[str(tiny_encoder)]
    assert (folder["family"], folder["installed"], folder["source"]) == ("encoder", True, "folder")
    assert folder["params"].endswith((" KB", " MB"))  # the folder's weights on disk (a tiny model: KB)
    assert client.models.retrieve(str(tiny_encoder)).model_dump()["family"] == "encoder"


def test_a_folder_named_by_an_alias_is_listed(
    settings: Settings, tiny_causal_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from localft.api.server import EmbeddedServer

    monkeypatch.setenv("LOCALFT_MODEL_ALIASES", f"my-llm={tiny_causal_lm}")
    with EmbeddedServer(replace(settings, embedded_worker=False)) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=0)
        listed = {m.id: m.model_dump() for m in client.models.list()}
    assert listed[str(tiny_causal_lm)]["family"] == "causal_lm"
    assert listed[str(tiny_causal_lm)]["source"] == "folder"


def test_base_models_cannot_be_deleted(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.models.delete("smollm2-135m-instruct")
    assert refused.value.code == "model_not_deletable"
    assert "base model and cannot be deleted" in refused.value.message
    with pytest.raises(openai.NotFoundError):
        client.models.delete("ft:smollm2-135m-instruct:localft::nothere1")


def test_chat_with_a_local_base_model(client: openai.OpenAI, tiny_causal_lm: Path) -> None:
    completion = client.chat.completions.create(
        model=str(tiny_causal_lm),
        messages=[{"role": "user", "content": "classify the sentiment of this tweet"}],
        max_tokens=3,
        temperature=0,
        logprobs=True,
        top_logprobs=2,
        seed=1,
    )
    assert completion.object == "chat.completion" and completion.id.startswith("chatcmpl-")
    assert completion.model == str(tiny_causal_lm)
    assert completion.system_fingerprint
    [choice] = completion.choices
    assert choice.index == 0 and choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None and usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 3
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert choice.logprobs is not None and choice.logprobs.content
    assert len(choice.logprobs.content) == usage.completion_tokens
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in choice.logprobs.content)
    again = client.chat.completions.create(
        model=str(tiny_causal_lm),
        messages=[{"role": "user", "content": "classify the sentiment of this tweet"}],
        max_tokens=3,
        temperature=0,
    )
    assert again.choices[0].message.content == choice.message.content  # greedy is deterministic


def test_chat_errors(client: openai.OpenAI, tiny_causal_lm: Path) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found" and missing.value.param == "model"
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model=str(tiny_causal_lm), messages=[], max_tokens=1)
    assert bad.value.param == "messages"
    with pytest.raises(openai.BadRequestError) as hot:
        client.chat.completions.create(
            model=str(tiny_causal_lm), messages=[{"role": "user", "content": "hi"}], temperature=3
        )
    assert hot.value.param == "temperature"
