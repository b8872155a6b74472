"""Bad options and settings refused before anything loads: one JSON line, the protocol's exit code, and a
message naming the option (or variable) the value came from and what it accepts."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.cli import one_error_line

LEVELS = "expected one of DEBUG, INFO, WARNING, ERROR"
HOST_PORT = (
    "expected host[:port] (a host name or IP address, port 1-65535, no http://), "
    "e.g. twin-predictor.default or 127.0.0.1:8081"
)


def test_a_bad_log_level_flag_is_a_usage_error(twin, twin_home: Path) -> None:
    run = twin("--log-level", "bogus", "warehouse", "stats")
    error = one_error_line(run, 2, "usage", "twin")
    assert error == f"Invalid value for '--log-level': 'bogus' is not a log level: {LEVELS}"


def test_a_bad_log_level_variable_names_the_variable(twin, twin_home: Path) -> None:
    run = twin("warehouse", "stats", env={"TWIN_LOG_LEVEL": "bogus"})
    error = one_error_line(run, 2, "usage", "twin")
    assert error == f"Invalid value for TWIN_LOG_LEVEL: 'bogus' is not a log level: {LEVELS}"


def test_a_log_level_flag_is_case_insensitive(twin, twin_home: Path) -> None:
    run = twin("--log-level", "warning", "warehouse", "stats")
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.result["step"] == "warehouse.stats" and run.result["status"] == "ok"
    # the variable too: the settings read it as well, and refused the lower case the flag accepts (exit 2)
    run = twin("warehouse", "stats", env={"TWIN_LOG_LEVEL": "debug"})
    assert (run.returncode, run.result["status"]) == (0, "ok"), run.stderr[-2000:]


@pytest.mark.parametrize(
    ("port", "bound"),
    [
        ("99999", "less than or equal to 65535"),
        ("-1", "greater than or equal to 1"),
        ("0", "greater than or equal to 1"),
    ],
)
def test_serve_refuses_a_port_out_of_range(twin, twin_home: Path, port: str, bound: str) -> None:
    error = one_error_line(twin("serve", "--port", port), 2, "usage", "serve")
    assert error == f"Invalid value for '--port' / '--http_port': Input should be {bound}"


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:  # listening, as another server would
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_refuses_a_port_in_use_before_loading_anything(twin, twin_home: Path, taken_port: int) -> None:
    # A fresh home: without the early check, the missing API keys (or the models) would come first.
    run = twin("serve", "--host", "127.0.0.1", "--port", str(taken_port))
    error = one_error_line(run, 2, "config", "serve")
    assert error == (
        f"--port {taken_port}: 127.0.0.1:{taken_port} is already in use (another process listens there); "
        "choose another --port"
    )


@pytest.mark.parametrize("value", ["not a host", "http://predictor:8080", "predictor:99999", "predictor:"])
def test_serve_refuses_a_malformed_predictor_host(twin, twin_home: Path, value: str) -> None:
    run = twin("serve", "--component", "transformer", "--predictor-host", value)
    error = one_error_line(run, 2, "usage", "serve")
    assert error == f"Invalid value for '--predictor-host' / '--predictor_host': {value!r}: {HOST_PORT}"


def test_serve_accepts_a_predictor_host_without_a_port(twin, twin_home: Path, taken_port: int) -> None:
    # KServe's controller passes the predictor's service name alone: past the host check, to the port check.
    run = twin("serve", "--component", "transformer", "--predictor-host", "twin-predictor.default",
               "--port", str(taken_port))  # fmt: skip
    assert "is already in use" in one_error_line(run, 2, "config", "serve")


def _fd_error(twin, fd: int, *extra: str, pass_fds: tuple[int, ...] = ()) -> str:
    return one_error_line(twin("serve", "--fd", str(fd), *extra, pass_fds=pass_fds), 2, "config", "serve")


def test_serve_refuses_an_fd_that_is_not_a_listening_tcp_socket(twin, twin_home: Path, tmp_path: Path) -> None:
    # the child closes every descriptor but 0-2 and those passed: 1000 is none of its own this early
    assert _fd_error(twin, 1000) == (
        "--fd 1000: not an open file descriptor of this process (Bad file descriptor); pass it a listening "
        "socket (e.g. subprocess pass_fds)"
    )
    with open(tmp_path / "a-file", "w") as file:
        fd = file.fileno()
        assert _fd_error(twin, fd, pass_fds=(fd,)) == f"--fd {fd}: not a socket; expected a listening TCP socket"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        fd = udp.fileno()
        assert _fd_error(twin, fd, pass_fds=(fd,)) == (
            f"--fd {fd}: not a TCP socket (an IPv4 or IPv6 stream socket); expected a listening one"
        )
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, never listening
        fd = bound.fileno()
        assert _fd_error(twin, fd, pass_fds=(fd,)) == (
            f"--fd {fd}: the socket is not listening; bind it and call listen() before passing it"
        )


def test_serve_fd_is_given_alone_and_a_listening_socket_passes_the_check(twin, twin_home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        fd = sock.fileno()
        alone = "the server listens on the socket it was given, at that socket's address; give --fd alone"
        assert _fd_error(twin, fd, "--port", "8080", pass_fds=(fd,)) == f"--fd {fd} with --port: {alone}"
        both = _fd_error(twin, fd, "--http_port", "8080", "--host", "127.0.0.1", pass_fds=(fd,))
        assert both == f"--fd {fd} with --host and --port: {alone}"
        # alone, the socket passes: the server goes on to its settings (a fresh home has no API keys)
        error = _fd_error(twin, fd, pass_fds=(fd,))
        assert error.startswith("TWIN_SERVE_API_KEYS: no API keys configured"), error
    assert one_error_line(twin("serve", "--fd", "-1"), 2, "usage", "serve") == (
        "Invalid value for '--fd': Input should be greater than or equal to 0"
    )


def test_evaluate_names_the_baseline_and_what_it_accepts(twin, twin_home: Path) -> None:
    run = twin("evaluate", "--model", "ada/v0001", "--baseline", "prod", "--no-judge")
    error = one_error_line(run, 3, "input", "evaluate")
    assert error == (
        "--baseline 'prod': expected production, base or a model version <author_slug>/vNNNN, e.g. paul-iusztin/v0001"
    )


def test_evaluate_names_a_malformed_model(twin, twin_home: Path) -> None:
    error = one_error_line(twin("evaluate", "--model", "ada"), 3, "input", "evaluate")
    assert error == "--model 'ada': expected a model version <author_slug>/vNNNN, e.g. paul-iusztin/v0001"


@pytest.mark.parametrize("option", ["--max-rows", "--min-rows"])
def test_evaluate_refuses_negative_row_counts(twin, twin_home: Path, option: str) -> None:
    run = twin("evaluate", "--model", "ada/v0001", option, "-3")
    error = one_error_line(run, 2, "usage", "evaluate")
    minimum = 1 if option == "--min-rows" else 0  # the gate decides on at least one row
    assert error == f"Invalid value for '{option}': Input should be greater than or equal to {minimum}"


def test_train_blames_the_profile_option_it_came_from(twin, twin_home: Path) -> None:
    run = twin("train", "sft", "--dataset", "instruct/ada/v0001", "--profile", "nope")
    error = one_error_line(run, 2, "config", "train.sft")
    assert error.startswith("--profile: unknown training profile 'nope' (known: cpu-small, cpu-tiny, ")


def test_train_blames_the_variable_when_no_profile_option(twin, twin_home: Path) -> None:
    run = twin("train", "sft", "--dataset", "instruct/ada/v0001", env={"TWIN_TRAINING_PROFILE": "nope"})
    error = one_error_line(run, 2, "config", "train.sft")
    assert error.startswith("TWIN_TRAINING_PROFILE: unknown training profile 'nope' (known: cpu-small, cpu-tiny, ")


def test_drift_names_baseline_end_for_a_bad_baseline_end(twin, twin_home: Path) -> None:
    run = twin("monitor", "drift", "--reference", "baseline", "--baseline-end", "garbage")
    error = one_error_line(run, 3, "input", "monitor.drift")
    assert error == "--baseline-end 'garbage': not an ISO 8601 time (like 2026-11-22T17:00:00Z)"  # was: --end


# TWIN_LLM_BACKEND=openai without a base URL fails as soon as the LLM is opened: a request refused with an input
# error under it was refused before any model (the LLM, and the embedding model opened with it) was loaded.
NO_LLM = {"TWIN_LLM_BACKEND": "openai"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["   "], "query is empty"),
        (["hi", "--max-new-tokens", "0"], "max_new_tokens must be a positive integer (got 0)"),
        (["x" * 2001], "query is 2001 characters; the limit is 2000 (TWIN_SERVE_MAX_QUERY_CHARS)"),
        (["hi", "--author", "Nobody"], "no author named 'Nobody' in the warehouse (known: Ada Quillfeather)"),
    ],
)
def test_rag_query_refuses_bad_input_before_loading_models(
    twin, twin_home: Path, sample_dir: Path, args: list[str], message: str
) -> None:
    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    run = twin("rag", "query", *args, env=NO_LLM)
    assert one_error_line(run, 3, "input", "rag.query") == message


def test_rag_query_with_good_input_does_open_the_llm(twin, twin_home: Path, sample_dir: Path) -> None:
    assert twin("warehouse", "import", str(sample_dir)).returncode == 0
    run = twin("rag", "query", "hi", "--author", "ada quillfeather", env=NO_LLM)
    assert one_error_line(run, 2, "config", "rag.query").startswith("TWIN_LLM_BASE_URL: required")
