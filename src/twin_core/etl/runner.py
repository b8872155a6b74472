"""One crawl run: deduplicate the links, crawl them concurrently, upsert the documents, write the report."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from twin_core.domain.documents import Category, RawDocument, UserDocument
from twin_core.errors import InputError, TwinError
from twin_core.etl.crawl_report import CrawlReport, LinkResult
from twin_core.etl.crawlers.base import CrawlContext
from twin_core.etl.crawlers.github import canonical_repo_link, is_local_link, local_repo_uri
from twin_core.etl.dispatcher import Dispatcher
from twin_core.etl.errors import CrawlError
from twin_core.etl.http import HttpClient
from twin_core.etl.safety import domain_of, normalize_link
from twin_core.progress import ProgressFactory, silent
from twin_core.settings import Settings
from twin_core.stores.artifacts import open_artifact_store
from twin_core.stores.warehouse import Outcome, Warehouse, open_warehouse

log = logging.getLogger(__name__)
REPORTS_PREFIX = "etl/reports"


def canonical_link(link: str) -> str:
    """The one form of a link, from which its document id is derived: duplicates in a run are dropped."""
    link = link.strip()
    if is_local_link(link) and Path(link.removeprefix("file://")).exists():
        return local_repo_uri(link)
    return canonical_repo_link(normalize_link(link))


def dedupe(links: list[str]) -> tuple[list[str], list[str]]:
    """Unique canonical links in order, and the duplicates dropped."""
    seen: dict[str, None] = {}
    duplicates: list[str] = []
    for raw in links:
        if not raw.strip():
            continue
        link = canonical_link(raw)
        if link in seen:
            duplicates.append(raw.strip())
        else:
            seen[link] = None
    return list(seen), duplicates


def _crawl_one(link: str, dispatcher: Dispatcher, ctx: CrawlContext) -> tuple[str, list[RawDocument]]:
    ctx.started = time.perf_counter()
    crawler = dispatcher.crawler_for(link, ctx.settings)
    return crawler.name, crawler.crawl(link, ctx)


class _Author:
    """The run's author, stored in the warehouse only when the first document is: a run whose links all
    fail leaves no phantom author (a typo'd name) behind. Its id is derived from the full name, so the
    crawlers can use it before it is stored, and storing it twice changes nothing."""

    def __init__(self, warehouse: Warehouse, full_name: str) -> None:
        self.warehouse = warehouse
        fresh = UserDocument.from_full_name(full_name)  # InputError on an empty name, before any crawl
        known = warehouse.get_user(fresh.id)
        self.user = known or fresh  # an existing author keeps the spelling it was stored with
        self.stored = known is not None

    def store(self) -> None:
        if not self.stored:
            # the documents already carry this user's id and name: store exactly that user
            _, created = self.warehouse.get_or_create_user(self.user.full_name)
            self.stored = True
            if created:
                log.info("created user %s", self.user.full_name)


def _retire_link_variants(warehouse: Warehouse, docs: list[RawDocument]) -> list[str]:
    """The links of the documents removed because a stored repository document now stands for them: one
    stored under another link into the same GitHub repository (``…/r.git``, ``…/tree/main``, ``www.``) before
    such links became one document. Features drop their chunks on the next run (deletions propagate)."""
    retired: list[str] = []
    for doc in (d for d in docs if d.category is Category.REPOSITORIES):
        for doc_id, link in warehouse.document_links(doc.category, doc.author_id).items():
            if doc_id != doc.id and canonical_link(link) == doc.link:
                warehouse.delete_document(doc.category, doc_id)
                retired.append(link)
    return retired


def _store(author: _Author, docs: list[RawDocument]) -> tuple[dict[str, int], list[str]]:
    """Upsert the documents (the author first): the counts per outcome, and the outcomes of those reported
    again only because no validation has seen them since an earlier crawl stored them (still pending)."""
    counts = {o.value: 0 for o in Outcome}
    again: list[str] = []
    if docs:
        author.store()
    for doc in docs:
        waiting = author.warehouse.pending_documents(doc.category, [doc.id]).get(doc.id)
        outcome = author.warehouse.upsert_document(doc, pending=True).value
        counts[outcome] += 1
        if waiting == doc.content_hash:  # the same content again: reported only because it is not validated yet
            again.append(outcome)
    return counts, again


def _record(fut: Future, link: str, ctx: CrawlContext, author: _Author) -> LinkResult:
    """The result of one link: its documents upserted, or the reason it failed. A stored document stays
    pending (reported created or updated by every crawl) until `twin validate raw` has seen it."""
    result = LinkResult(link=link, domain=domain_of(link), crawler="", status="failed", notes=ctx.notes)
    try:
        result.crawler, docs = fut.result()
        counts, again = _store(author, docs)
        if again:
            ctx.notes.append(
                "still awaiting validation since an earlier crawl, so reported again: "
                + ", ".join(f"{o}={again.count(o)}" for o in sorted(set(again)))
            )
        ctx.notes += [f"replaced {old} (the same repository)" for old in _retire_link_variants(author.warehouse, docs)]
        result.documents = counts
        changed = counts["created"] + counts["updated"]
        result.status = "succeeded" if changed else "unchanged"
    except CrawlError as exc:
        result.reason, result.error = exc.reason, exc.message
    except TwinError as exc:
        result.reason, result.error = exc.kind, str(exc)
    except Exception as exc:  # one broken link never stops the others
        log.exception("crawl of %s failed unexpectedly", link)
        result.reason, result.error = "unexpected", f"{type(exc).__name__}: {exc}"
    result.seconds = round(time.perf_counter() - (ctx.started or time.perf_counter()), 3)
    if result.status == "failed":
        log.warning("failed %s: %s: %s", link, result.reason, result.error)
    else:
        log.info("%s %s: %s", result.status, link, result.documents)
    return result


def run_crawl(
    settings: Settings, user_full_name: str, links: list[str], *, progress: ProgressFactory = silent
) -> CrawlReport:
    unique, duplicates = dedupe(links)
    if not unique:
        raise InputError("no links to crawl (give --link URL or a --config file with links)")
    author = _Author(open_warehouse(settings), user_full_name)
    # opened before any crawl: a store that cannot open (a pod without TWIN_ARTIFACTS_URI) fails the step first
    reports = open_artifact_store(settings)
    user = author.user
    log.info("crawling %d link(s) for %s (user %s)", len(unique), user.full_name, "known" if author.stored else "new")
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    report = CrawlReport(run_id=run_id, user=user.full_name, duplicates=duplicates)
    http = HttpClient(settings)
    dispatcher = Dispatcher.from_entry_points()

    with ThreadPoolExecutor(max_workers=min(settings.crawl.concurrency, len(unique))) as pool:
        futures: dict[Future, tuple[str, CrawlContext]] = {}
        for link in unique:
            ctx = CrawlContext(settings=settings, http=http, user=user)
            futures[pool.submit(_crawl_one, link, dispatcher, ctx)] = (link, ctx)
        bar = progress(total=len(unique), desc="crawl", unit="link")
        # Documents are written from this thread only: the embedded warehouse is not shared across threads.
        for fut in as_completed(futures):
            link, ctx = futures[fut]
            report.links.append(_record(fut, link, ctx, author))
            bar.update(1)
        bar.close()
    report.links.sort(key=lambda r: unique.index(r.link))
    try:
        reports.put_json(f"{REPORTS_PREFIX}/{run_id}.json", report.as_dict())
    except TwinError as exc:
        log.error("could not write the crawl report: %s", exc)
    # no settling here: the documents stay pending until `twin validate raw` has seen them (see upsert_document)
    return report
