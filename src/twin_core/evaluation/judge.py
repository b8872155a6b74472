"""LLM-as-a-judge: accuracy and style on a 1-3 scale, the criteria of *LLM Engineer's Handbook* (ch. 7).

The judge is any ``LLMBackend``: an OpenAI-compatible endpoint (TWIN_EVAL_JUDGE_BASE_URL) or the local
LLM. A call that fails, times out or answers without parseable scores yields ``None`` scores for that
answer: a missing score, never a zero and never a crash. After ``max_failures`` failed calls in a row
the judge is marked unavailable and the remaining answers are not sent.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from twin_core.llm.base import LLMBackend, Messages
from twin_core.settings import Settings

log = logging.getLogger(__name__)

CRITERIA = """\
You are an expert judge. Evaluate the quality of a given answer to an instruction based on two criteria:
1. Accuracy: How factually correct is the information presented in the answer? You are a technical expert in this topic.
2. Style: Is the tone and writing style appropriate for a blog post or social media content? \
It should use simple but technical words and avoid formal or academic language.

Accuracy scale:
1 (Poor): Contains factual errors or misleading information
2 (Good): Mostly accurate with minor errors or omissions
3 (Excellent): Highly accurate and comprehensive

Style scale:
1 (Poor): Too formal, uses some overly complex words
2 (Good): Good balance of technical content and accessibility, but still uses formal words and expressions
3 (Excellent): Perfectly accessible language for blog/social media, \
uses simple but precise technical terms when necessary"""

OUTPUT = """Provide your evaluation in JSON format with the following structure:
{"accuracy": {"analysis": "...", "score": 0}, "style": {"analysis": "...", "score": 0}}"""

_LOOSE = re.compile(r"(accuracy|style)\D{0,40}?([123])\b", re.IGNORECASE)


def judge_messages(instruction: str, answer: str, reference: str) -> Messages:
    user = (
        f"{CRITERIA}\n\nThe author's own answer, for reference on facts and voice:\n{reference}\n\n"
        f"Instruction: {instruction}\n\nAnswer: {answer}\n\n{OUTPUT}"
    )
    return [{"role": "user", "content": user}]


def parse_scores(text: str) -> dict[str, int | None]:
    """{"accuracy": 1-3 | None, "style": 1-3 | None} from the judge's reply (JSON, or close to it)."""
    scores: dict[str, int | None] = {"accuracy": None, "style": None}
    match = re.search(r"\{.*\}", text or "", re.DOTALL)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict):
            for key in scores:
                item = data.get(key)
                value = item.get("score") if isinstance(item, dict) else item
                try:
                    num = int(value)
                except (TypeError, ValueError):
                    continue
                scores[key] = num if 1 <= num <= 3 else None
            if any(v is not None for v in scores.values()):
                return scores
    for key, value in _LOOSE.findall(text or ""):
        if scores[key.lower()] is None:
            scores[key.lower()] = int(value)
    return scores


@dataclass
class Judge:
    """Scores answers; ``status`` is ok, partial (some answers unscored) or unavailable."""

    llm: LLMBackend | None
    name: str
    max_new_tokens: int = 160
    max_failures: int = 3
    timeout_s: float | None = 60.0
    failures: int = 0
    unreachable: int = 0  # failed calls (an error instead of a reply): an outage a later run may not meet
    consecutive: int = 0
    calls: int = 0
    unavailable_reason: str | None = None
    errors: list[str] = field(default_factory=list)
    key_setting: str | None = None  # an endpoint called without a key: the variable a refusal (401/403) names

    @property
    def available(self) -> bool:
        return self.llm is not None and self.unavailable_reason is None

    def score(self, instruction: str, answer: str | None, reference: str) -> dict[str, int | None]:
        return self.score_batch([(instruction, answer, reference)], batch_size=1)[0]

    def score_batch(
        self, items: list[tuple[str, str | None, str]], *, batch_size: int = 8
    ) -> list[dict[str, int | None]]:
        """Scores per (instruction, answer, reference); batched on a local LLM, missing when unavailable."""
        from twin_core.evaluation.answers import generate

        out: list[dict[str, int | None]] = [{"accuracy": None, "style": None} for _ in items]
        # a backend without batching (an endpoint) is called one answer at a time, so that it is given up
        # after max_failures calls in a row, not after a whole batch of calls that each wait out their timeout
        batch_size = max(1, batch_size) if hasattr(self.llm, "generate_batch") else 1
        for start in range(0, len(items), batch_size):
            todo = [i for i in range(start, min(start + batch_size, len(items))) if items[i][1] is not None]
            if not todo or not self.available:
                continue
            prompts = [judge_messages(items[i][0], str(items[i][1]), items[i][2]) for i in todo]
            replies = generate(self.llm, prompts, self.max_new_tokens, batch_size=batch_size, timeout_s=self.timeout_s)
            for i, reply in zip(todo, replies, strict=True):
                out[i] = self._outcome(reply)
        return out

    def _outcome(self, reply: str | BaseException) -> dict[str, int | None]:
        self.calls += 1
        try:
            if isinstance(reply, BaseException):
                self.unreachable += 1
                raise reply
            scores = parse_scores(reply)
            if all(v is None for v in scores.values()):
                raise ValueError(f"no scores in the judge's reply: {reply[:120]!r}")
        except Exception as exc:  # noqa: BLE001 - any judge failure is a missing score
            self.failures += 1
            self.consecutive += 1
            self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            if self.consecutive >= self.max_failures and self.unavailable_reason is None:
                self.unavailable_reason = f"{self.consecutive} failed calls in a row; last: {self.errors[-1]}"
                if self.key_setting and re.search(r"HTTP 40[13]\b", self.errors[-1]):
                    self.unavailable_reason += f" ({self.key_setting} is not set: the endpoint wants a key)"
                log.warning("judge %s marked unavailable: %s", self.name, self.unavailable_reason)
            return {"accuracy": None, "style": None}
        self.consecutive = 0
        return scores

    def mark(self) -> dict[str, Any]:
        """Where the judge stands now: ``since(mark)`` gives what it did after (one model's share of a run)."""
        return {"calls": self.calls, "failures": self.failures, "unreachable": self.unreachable,
                "errors": len(self.errors), "reason": self.unavailable_reason}  # fmt: skip

    def since(self, mark: dict[str, Any]) -> dict[str, Any]:
        """The calls, failures, unreachable calls and errors after ``mark``, and the reason it was given up if
        that happened after ``mark``: kept with a model's checkpoint, added back by ``resume``."""
        counts = {k: getattr(self, k) - mark[k] for k in ("calls", "failures", "unreachable")}
        reason = self.unavailable_reason if mark["reason"] is None else None
        return {**counts, "errors": self.errors[mark["errors"] :], "reason": reason}

    def resume(self, share: dict[str, Any]) -> None:
        """Add back a checkpointed model's share (``since``), as if it had been judged in this run: a judge
        given up then is given up now, as it would have been for the next model."""
        for key in ("calls", "failures", "unreachable"):
            setattr(self, key, getattr(self, key) + int(share.get(key, 0)))
        self.errors += list(share.get("errors", []))
        if share.get("reason") and self.unavailable_reason is None:
            self.unavailable_reason = share["reason"]

    def summary(self) -> dict[str, Any]:
        if self.unavailable_reason:
            status = "unavailable"
        elif self.llm is None:
            status = "off"
        elif self.failures:
            status = "partial"
        else:
            status = "ok"
        return {
            "name": self.name,
            "status": status,
            "calls": self.calls,
            "failures": self.failures,
            "unreachable": self.unreachable,
            "reason": self.unavailable_reason,
            "errors": self.errors[:5],
        }


def check_judge_settings(settings: Settings) -> str | None:
    """The judge endpoint's URL (None: no endpoint); a malformed one is a ConfigError (exit 2) naming
    TWIN_EVAL_JUDGE_BASE_URL, before any model loads: a setting to fix, not an endpoint that is down."""
    if settings.eval.judge == "off" or not settings.eval.judge_base_url:
        return None
    from twin_core.llm.openai import check_base_url

    return check_base_url(settings.eval.judge_base_url, "TWIN_EVAL_JUDGE_BASE_URL")


def open_judge(settings: Settings, max_new_tokens: int = 160, max_failures: int = 3) -> Judge:
    """The judge the settings select: TWIN_EVAL_JUDGE=off, an OpenAI-compatible endpoint, or the local LLM.

    A malformed endpoint URL is a ConfigError (``check_judge_settings``); otherwise opening never fails: a
    judge that cannot be built is returned unavailable, with the reason.
    """
    if settings.eval.judge == "off":
        return Judge(None, "off")
    if settings.eval.judge_base_url:
        from twin_core.llm.openai import OpenAICompatibleLLM

        url = check_judge_settings(settings)
        model = settings.eval.judge_model or settings.llm.api_model or "judge"
        key = settings.eval.judge_api_key.get_secret_value() if settings.eval.judge_api_key else None
        setting = "TWIN_EVAL_JUDGE_BASE_URL"
        llm = OpenAICompatibleLLM(url, model, api_key=key, timeout_s=30.0, retries=1, setting=setting)
        judge = Judge(llm, f"{model} @ {url}", max_new_tokens, max_failures)
        judge.key_setting = None if key else "TWIN_EVAL_JUDGE_API_KEY"
        return judge
    try:
        from twin_core.llm import open_llm

        llm = open_llm(settings)
    except Exception as exc:  # noqa: BLE001
        judge = Judge(None, "local", max_new_tokens, max_failures)
        judge.unavailable_reason = f"cannot open the local LLM: {type(exc).__name__}: {exc}"
        return judge
    return Judge(llm, f"local {llm.model_version}", max_new_tokens, max_failures)
