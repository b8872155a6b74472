"""Error types shared by every step. Each maps to one exit code of the `twin` CLI."""


class TwinError(Exception):
    """Base class: an expected failure with a message meant for the user."""

    exit_code = 1
    kind = "error"


class ConfigError(TwinError):
    """A missing or invalid setting (names the environment variable)."""

    exit_code = 2
    kind = "config"


class InputError(TwinError):
    """Bad input data: malformed file, unknown category, empty document..."""

    exit_code = 3
    kind = "input"


class BackendUnavailable(TwinError):
    """A store or service could not be reached (MongoDB, Qdrant, S3, an LLM endpoint)."""

    exit_code = 4
    kind = "unavailable"
