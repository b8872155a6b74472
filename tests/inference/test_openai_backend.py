"""The OpenAI-compatible backend against a stub HTTP server started here on 127.0.0.1."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from typing import Any

import pytest
from support.openai_stub import ChatHandler
from support.ports import refused_port

from twin_core.errors import BackendUnavailable, ConfigError
from twin_core.llm.openai import OpenAICompatibleLLM
from twin_core.settings import updated


class _Stub(ChatHandler):
    calls: list[dict[str, Any]] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802
        body = self.read_body()
        _Stub.calls.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
        if _Stub.fail_first > 0:
            _Stub.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        reply = {
            "choices": [{"message": {"role": "assistant", "content": f"echo: {body['messages'][-1]['content']}"}}],
            "usage": {"prompt_tokens": 11, "completion_tokens": 3},
        }
        self.send_json(reply)


@pytest.fixture
def stub_url() -> Iterator[str]:
    _Stub.calls.clear()
    _Stub.fail_first = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_chat_round_trip(stub_url: str) -> None:
    llm = OpenAICompatibleLLM(stub_url, "tiny", api_key="sk-test", retries=0)
    gen = llm.chat([{"role": "user", "content": "hello"}], max_new_tokens=7)
    assert gen.text == "echo: hello"
    assert (gen.prompt_tokens, gen.completion_tokens) == (11, 3)
    call = _Stub.calls[0]
    assert call["path"] == "/v1/chat/completions"
    assert call["body"]["max_tokens"] == 7
    assert call["body"]["model"] == "tiny"
    assert call["auth"] == "Bearer sk-test"


def test_retries_then_succeeds(stub_url: str) -> None:
    _Stub.fail_first = 1
    gen = OpenAICompatibleLLM(stub_url, "tiny", retries=2).chat([{"role": "user", "content": "x"}], max_new_tokens=2)
    assert gen.text == "echo: x"
    assert len(_Stub.calls) == 2


def test_endpoint_down_is_a_clear_error() -> None:
    with refused_port() as port:
        llm = OpenAICompatibleLLM(f"http://127.0.0.1:{port}/v1", "tiny", retries=1, timeout_s=2)
        with pytest.raises(BackendUnavailable, match="unavailable after 2 attempts.*TWIN_LLM_BASE_URL"):
            llm.chat([{"role": "user", "content": "x"}], max_new_tokens=2)


def test_the_judge_endpoint_down_names_the_judges_setting(settings: Any) -> None:
    # the judge's endpoint failing said "check TWIN_LLM_BASE_URL", the serving model's variable
    from twin_core.evaluation.judge import open_judge

    with refused_port() as port:
        judge = open_judge(updated(settings, eval_judge_base_url=f"http://127.0.0.1:{port}/v1"))
        with pytest.raises(BackendUnavailable) as caught:
            judge.llm.chat([{"role": "user", "content": "x"}], max_new_tokens=2)
    assert str(caught.value).endswith("check TWIN_EVAL_JUDGE_BASE_URL")


def test_missing_base_url_names_the_setting(settings: Any) -> None:
    with pytest.raises(ConfigError, match="TWIN_LLM_BASE_URL"):
        OpenAICompatibleLLM.from_settings(updated(settings, llm_backend="openai"))


@pytest.mark.parametrize("url", ["not a url", "host:8000/v1", "ftp://host/v1", "http://", "http://host:99999/v1"])
def test_a_malformed_base_url_is_a_config_error_before_any_request(settings: Any, url: str) -> None:
    configured = updated(settings, llm_backend="openai", llm_base_url=url)
    with pytest.raises(ConfigError) as raised:
        OpenAICompatibleLLM.from_settings(configured)
    expected = f"TWIN_LLM_BASE_URL {url!r}: expected an http(s) URL with a host, e.g. http://host:8000/v1"
    assert str(raised.value) == expected


def test_a_malformed_url_is_not_retried() -> None:
    # A URL that did not come through from_settings (e.g. the judge's): refused at once, no backoff.
    llm = OpenAICompatibleLLM("not a url", "tiny", retries=5)
    with pytest.raises(ConfigError) as raised:
        llm.chat([{"role": "user", "content": "x"}], max_new_tokens=2)
    assert str(raised.value) == "LLM endpoint 'not a url/chat/completions': not a valid http(s) URL"
