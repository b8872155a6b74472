"""Request parsing and response shapes of the twin's KServe endpoints (v1 JSON and v2 tensors).

v1: ``{"instances": [{"query": str, "author": str?, "max_new_tokens": int?}]}`` ->
``{"predictions": [{"answer": str, "sources": [{"link", "score", ...}], "model_version": str}]}``.
v2: inputs ``query`` (BYTES), optional ``author`` (BYTES) and ``max_new_tokens`` (an integer datatype), one
element each (shape ``[1]``; another datatype or shape is a 400) -> outputs ``answer``, ``sources`` (JSON
text) and ``model_version`` (BYTES).
Every malformed shape is an InputError (HTTP 400), never a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from twin_core.errors import InputError
from twin_core.inference.pipeline import RAGAnswer, RAGRequest

MAX_INSTANCES = 4
INT_DATATYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
ALLOWED_FIELDS = {"query", "author", "max_new_tokens"}
NOT_UNICODE = "is not valid Unicode (it holds a lone surrogate)"
# KServe's message when orjson refuses a lone surrogate in a JSON body (a v1 body sent as application/json).
_UNPARSED_SURROGATE = re.compile(r"Unrecognized request format: (?:no|invalid) (?:low|high) surrogate in string")


def valid_text(value: str, where: str) -> str:
    """``value``, if it is valid Unicode. Python's json (the OpenAI route, v2 bodies, v1 bodies without a
    JSON content type) accepts lone surrogates such as ``"\\ud800"``, which neither the tokenizer nor the
    request log can take: a 400 here instead of a 500 (and a lost log row) later."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{where} {NOT_UNICODE}") from None
    return value


def unparsed_surrogate(reason: str) -> str | None:
    """The twin's message for KServe's refusal of a JSON body holding a lone surrogate (its parser, orjson,
    stops there, so no field can be named), e.g. ``request body is not valid Unicode (it holds a lone
    surrogate): line 1 column 31 (char 30)``; None for any other reason."""
    found = _UNPARSED_SURROGATE.match(reason)
    if found is None:
        return None
    return f"request body {NOT_UNICODE}{reason[found.end() :]}"


def _instance(obj: Any, where: str) -> RAGRequest:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected an object with a 'query' string")
    if "query" not in obj:
        raise InputError(f"{where}: missing field 'query'")
    query = obj["query"]
    if not isinstance(query, str):
        raise InputError(f"{where}.query: expected a string, got {type(query).__name__}")
    valid_text(query, f"{where}.query")
    author = obj.get("author")
    if author is not None and not isinstance(author, str):
        raise InputError(f"{where}.author: expected a string, got {type(author).__name__}")
    if author is not None:
        valid_text(author, f"{where}.author")
    max_new = obj.get("max_new_tokens")
    if max_new is not None and (isinstance(max_new, bool) or not isinstance(max_new, int)):
        raise InputError(f"{where}.max_new_tokens: expected an integer, got {type(max_new).__name__}")
    # Anything else (author_id, user_id...) is ignored: identity comes from the API key only.
    return RAGRequest(query=query, author=author, max_new_tokens=max_new)


def parse_v1(body: Any) -> list[RAGRequest]:
    if not isinstance(body, dict):
        raise InputError('expected a JSON object {"instances": [{"query": "..."}]}')
    instances = body.get("instances")
    if instances is None:
        raise InputError("missing field 'instances'")
    if not isinstance(instances, list) or not instances:
        raise InputError("'instances' must be a non-empty list")
    if len(instances) > MAX_INSTANCES:
        raise InputError(f"at most {MAX_INSTANCES} instances per request")
    return [_instance(obj, f"instances[{i}]") for i, obj in enumerate(instances)]


def _checked_tensor(tensor: Any, name: str, kind: type) -> None:
    """The tensor's declared type and shape: ``BYTES`` for text, an integer type for numbers, and a shape of
    one element (``[1]``, ``[1, 1]``): a tensor that says something else is refused, not read as if it did."""
    datatypes = ("BYTES",) if kind is str else INT_DATATYPES
    if tensor.datatype not in datatypes:
        expected = "BYTES" if kind is str else "an integer datatype (INT32, INT64...)"
        raise InputError(f"input '{name}': datatype {tensor.datatype!r}, expected {expected}")
    shape = list(tensor.shape or [])
    if not all(isinstance(d, int) and not isinstance(d, bool) for d in shape) or math.prod(shape) != 1:
        raise InputError(f"input '{name}': shape {shape} is not one element (expected [1])")


def _scalar(infer_request: Any, name: str, kind: type) -> Any:
    tensor = infer_request.get_input_by_name(name)
    if tensor is None:
        return None
    _checked_tensor(tensor, name, kind)
    data = tensor.data
    if hasattr(data, "tolist"):
        data = data.tolist()
    while isinstance(data, list) and len(data) == 1 and isinstance(data[0], list):
        data = data[0]
    if not isinstance(data, list) or len(data) != 1:
        raise InputError(f"input '{name}': expected exactly one element")
    value = data[0]
    if kind is str:
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            raise InputError(f"input '{name}': expected BYTES (a string)")
        valid_text(value, f"input '{name}'")
    elif isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"input '{name}': expected an integer")
    return value


def parse_v2(infer_request: Any) -> list[RAGRequest]:
    query = _scalar(infer_request, "query", str)
    if query is None:
        raise InputError("missing input 'query'")
    return [
        RAGRequest(
            query=query,
            author=_scalar(infer_request, "author", str),
            max_new_tokens=_scalar(infer_request, "max_new_tokens", int),
        )
    ]


def prediction(answer: RAGAnswer) -> dict[str, Any]:
    """The v1 prediction: the answer as `twin rag query` reports it, less the expanded queries."""
    out = answer.as_dict()
    out.pop("expanded_queries", None)
    return out


def v2_response(answer: RAGAnswer, model_name: str, response_id: str) -> Any:
    from kserve import InferOutput, InferResponse

    outputs = [
        InferOutput("answer", [1], "BYTES", [answer.answer]),
        InferOutput("sources", [1], "BYTES", [json.dumps(answer.sources)]),
        InferOutput("model_version", [1], "BYTES", [answer.model_version]),
    ]
    return InferResponse(response_id, model_name, outputs, model_version=answer.model_version)
