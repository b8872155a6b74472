"""`twin serve`'s OpenAI-compatible route driven by the official `openai` SDK, unchanged."""

from __future__ import annotations

from typing import Any

import openai  # a dev dependency (pyproject.toml): missing, the suite fails here instead of skipping
import pytest

pytestmark = pytest.mark.slow

ADA_KEY = "ada-test-key-0123456789abcdef"
QUESTION = "What is chunk overlap for?"


@pytest.fixture
def client(served: Any) -> Any:
    return openai.OpenAI(base_url=f"{served.url}/openai/v1", api_key=ADA_KEY, max_retries=0, timeout=300)


def test_models_list(client: Any) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids[0] == "twin"
    assert any(i.startswith("smollm2-135m-instruct") for i in ids)  # the base model is served


def test_chat_completion_and_stream_join_to_the_same_answer(client: Any) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    done = client.chat.completions.create(model="twin", messages=messages, max_tokens=8)
    answer = done.choices[0].message.content
    assert answer and done.choices[0].message.role == "assistant"
    assert done.usage.completion_tokens <= 8 and done.usage.prompt_tokens > 0
    assert done.model.startswith("smollm2-135m-instruct")

    stream = client.chat.completions.create(
        model="twin", messages=messages, max_tokens=8, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1  # streamed token by token, not one blob
    assert "".join(pieces) == answer  # greedy: the streamed answer is the answer
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage.completion_tokens == done.usage.completion_tokens


def test_stream_errors_before_generation_are_http_errors(served: Any) -> None:
    bad = openai.OpenAI(base_url=f"{served.url}/openai/v1", api_key="wrong-key-0123456789", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="twin", messages=[{"role": "user", "content": "hi"}], stream=True)
    ok = openai.OpenAI(base_url=f"{served.url}/openai/v1", api_key=ADA_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError):
        ok.chat.completions.create(
            model="twin", messages=[{"role": "user", "content": "hi"}], stream=True, extra_body={"author": 7}
        )
