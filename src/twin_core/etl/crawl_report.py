"""The per-run report: per domain, how many links were crawled, stored, unchanged or failed, and why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class LinkResult:
    link: str
    domain: str
    crawler: str
    status: str  # "succeeded" (something created/updated), "unchanged" or "failed"
    documents: dict[str, int] = field(default_factory=dict)  # created/updated/unchanged counts
    reason: str = ""
    error: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class CrawlReport:
    run_id: str
    user: str
    links: list[LinkResult] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    def domains(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for r in self.links:
            d = out.setdefault(r.domain, {"total": 0, "succeeded": 0, "unchanged": 0, "failed": 0, "failures": []})
            d["total"] += 1
            d[r.status] += 1
            if r.status == "failed":
                d["failures"].append({"link": r.link, "reason": r.reason, "error": r.error})
        return dict(sorted(out.items()))

    def totals(self) -> dict[str, int]:
        totals = {"links": len(self.links), "succeeded": 0, "unchanged": 0, "failed": 0}
        docs = {"created": 0, "updated": 0, "unchanged": 0}
        for r in self.links:
            totals[r.status] += 1
            for k, v in r.documents.items():
                docs[k] = docs.get(k, 0) + v
        return {**totals, **{f"documents_{k}": v for k, v in docs.items()}}

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "user": self.user,
            "totals": self.totals(),
            "domains": self.domains(),
            "duplicates": self.duplicates,
            "links": [vars(r) for r in self.links],
        }
