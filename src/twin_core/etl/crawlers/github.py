"""Code repositories: a shallow ``git clone`` into a temporary folder (always removed), then a filtered walk.

Works with remote URLs (GitHub and any git host over https) and with ``file://`` URLs and local paths.
Code is kept byte-exact: files are decoded as UTF-8 without any newline or whitespace change; files that
are not UTF-8 text, too large, ignored by pattern or symlinks are skipped and counted in the run notes.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from twin_core.domain.documents import RawDocument, RepositoryDocument
from twin_core.etl.crawlers.base import BaseCrawler, CrawlContext
from twin_core.etl.errors import CrawlError
from twin_core.etl.safety import check_target
from twin_core.settings import Settings

log = logging.getLogger(__name__)

IGNORE_DIRS = {
    ".git", "node_modules", "vendor", "third_party", "dist", "build", "target", "out", ".venv", "venv", "env",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox", ".idea", ".vscode", ".next", "coverage",
    "site-packages", ".gradle", "bower_components", "generated", "__generated__",
}  # fmt: skip
IGNORE_FILES = (
    "*.lock", "package-lock.json", "yarn.lock", "pnpm-lock.yaml", "poetry.lock", "Pipfile.lock", "uv.lock",
    "Cargo.lock", "go.sum", "*.min.js", "*.min.css", "*.map", "*.pyc", "*.pyo", "*.class", "*.o", "*.so", "*.a",
    "*.dll", "*.dylib", "*.exe", "*.bin", "*.dat", "*.db", "*.sqlite", "*.png", "*.jpg", "*.jpeg", "*.gif",
    "*.bmp", "*.ico", "*.webp", "*.svg", "*.pdf", "*.zip", "*.tar", "*.gz", "*.tgz", "*.bz2", "*.xz", "*.7z",
    "*.jar", "*.whl", "*.egg", "*.mp3", "*.mp4", "*.mov", "*.avi", "*.woff", "*.woff2", "*.ttf", "*.otf",
    "*.eot", "*.parquet", "*.pkl", "*.pt", "*.pth", "*.onnx", "*.safetensors", "*.gguf", "*.h5", "*.ipynb",
    "*_pb2.py", "*.generated.*", ".DS_Store",
)  # fmt: skip


GITHUB_HOSTS = ("github.com", "www.github.com")


def is_github_host(link: str) -> bool:
    """A link whose host is github.com itself (``GITHUB_HOSTS``): not ``gist.github.com`` (a gist is another
    repository), not a look-alike such as ``notgithub.com``, nor a path that merely contains ``github.com``."""
    return (urlsplit(link.strip()).hostname or "").lower() in GITHUB_HOSTS


def is_local_link(link: str) -> bool:
    """A file:// URL or something that is clearly a filesystem path (not a bare word)."""
    if link.startswith("file://"):
        return True
    if "://" in link:
        return False
    return link.startswith(("/", "./", "../", "~")) or Path(link).expanduser().exists()


def local_repo_uri(link: str) -> str:
    """file:// URI of a local repository link (a path or a file:// URL)."""
    path = Path(unquote(urlsplit(link).path)) if link.startswith("file://") else Path(link).expanduser()
    return path.resolve().as_uri()


def canonical_repo_link(link: str) -> str:
    """``https://github.com/<owner>/<repo>`` for any link into a GitHub repository (``.git``, a trailing
    slash, ``www.``, ``/tree/<branch>/...``, a query or fragment, any letter case: GitHub's owner and
    repository names are case-insensitive): the crawler clones the same repository for all of them, so they
    must be one document (its id is derived from the link). Other links (``gist.github.com`` too) unchanged."""
    parts = urlsplit(link.strip())
    if parts.scheme.lower() not in ("http", "https") or not is_github_host(link):
        return link
    segments = [p.lower() for p in parts.path.split("/") if p]
    if len(segments) < 2 or not segments[1].removesuffix(".git"):
        return link
    return f"https://github.com/{segments[0]}/{segments[1].removesuffix('.git')}"


def is_git_repository(path: Path) -> bool:
    """A work tree (``.git`` folder or file) or a bare repository (``HEAD`` and ``objects/``)."""
    return (path / ".git").exists() or ((path / "HEAD").is_file() and (path / "objects").is_dir())


class GitHubCrawler(BaseCrawler):
    name = "github"
    priority = 10

    def matches(self, link: str, settings: Settings) -> bool:
        if is_local_link(link):
            return True
        return is_github_host(link) or urlsplit(link).path.endswith(".git")

    def clone_url(self, link: str, settings: Settings) -> tuple[str, str]:
        """(URL to clone, repository name) after the safety checks."""
        if is_local_link(link):
            if not settings.local_repos_allowed:
                raise CrawlError(
                    "blocked_address",
                    "local repositories are disabled (TWIN_CRAWL_ALLOW_LOCAL_REPOS; off by default in kubernetes mode)",
                )
            uri = local_repo_uri(link)
            path = Path(unquote(urlsplit(uri).path))
            if path.exists() and not path.is_dir():
                raise CrawlError(
                    "not_a_repository", f"{path} is a file, not a git repository; link the repository folder"
                )
            if not path.is_dir():
                raise CrawlError("git", f"repository {path} does not exist")
            if not is_git_repository(path):
                raise CrawlError(
                    "not_a_repository",
                    f"{path} is a folder but not a git repository (no .git inside); run `git init` and commit, "
                    "or link the repository itself",
                )
            return uri, path.name.removesuffix(".git")
        parts = check_target(link, settings)
        segments = [p for p in parts.path.split("/") if p]
        if is_github_host(link):  # github.com itself: gist.github.com and look-alikes clone from the link as given
            if len(segments) < 2 or not segments[1].removesuffix(".git"):
                raise CrawlError("invalid_url", f"{link} is not a repository URL (expected github.com/<owner>/<repo>)")
            segments = segments[:2]  # drop /tree/<branch>/..., /blob/...
            url = f"https://github.com/{segments[0]}/{segments[1].removesuffix('.git')}.git"
        else:
            url = link
        return url, segments[-1].removesuffix(".git") if segments else "repository"

    def crawl(self, link: str, ctx: CrawlContext) -> list[RawDocument]:
        url, name = self.clone_url(link, ctx.settings)
        if shutil.which("git") is None:
            raise CrawlError("git_unavailable", "the git executable is not installed")
        workdir = tempfile.mkdtemp(prefix="twin-git-")
        try:
            dest = Path(workdir) / "repo"
            self._clone(url, dest, ctx.settings)
            content, skipped = walk_repository(dest, ctx.settings)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if skipped:
            ctx.notes.append("skipped files: " + ", ".join(f"{k}={v}" for k, v in sorted(skipped.items())))
        if not content:
            raise CrawlError("empty", f"{link}: no text files left after filtering")
        platform = "github" if is_github_host(url) else "git"
        doc_link = local_repo_uri(link) if is_local_link(link) else link
        return [
            RepositoryDocument(
                link=doc_link,
                name=name,
                platform=platform,
                author_id=ctx.user.id,
                author_full_name=ctx.user.full_name,
                content=content,
            )
        ]

    def _clone(self, url: str, dest: Path, settings: Settings) -> None:
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",  # a missing/private repo must fail, not wait for a password
            "GIT_ALLOW_PROTOCOL": "http:https:file",  # no ext::, ssh or other transports
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_LFS_SKIP_SMUDGE": "1",
        }
        cmd = ["git", "-c", "core.symlinks=false", "clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet"]
        try:
            proc = subprocess.run(
                [*cmd, "--", url, str(dest)],
                capture_output=True,
                text=True,
                timeout=settings.crawl.git_timeout_s,
                env=env,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise CrawlError(
                "timeout", f"git clone of {url} took longer than {settings.crawl.git_timeout_s}s"
            ) from None
        if proc.returncode != 0:
            lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
            fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]  # the reason, not the hint after it
            detail = (fatal or lines or [f"exit code {proc.returncode}"])[0]
            raise CrawlError(git_failure_reason(proc.stderr), f"git clone of {url} failed: {detail}")


# git's own words for a network failure (a retry may succeed), as opposed to a missing or private repository
_GIT_NETWORK = (
    (re.compile(r"could not resolve host", re.I), "dns"),
    (re.compile(r"connection timed out|operation timed out|timed out after", re.I), "timeout"),
    (
        re.compile(r"failed to connect|connection refused|connection reset|early eof|unexpected disconnect", re.I),
        "connection",
    ),
)
_GIT_HTTP = re.compile(r"returned error: (\d{3})")


def git_failure_reason(stderr: str) -> str:
    """The reason of a failed clone: ``dns``, ``timeout``, ``connection`` or ``http_5xx``/``http_429`` (a retry
    may succeed), else ``git`` (the repository is missing or private: permanent)."""
    for pattern, reason in _GIT_NETWORK:
        if pattern.search(stderr):
            return reason
    status = _GIT_HTTP.search(stderr)
    if status and (status.group(1).startswith("5") or status.group(1) == "429"):
        return f"http_{status.group(1)}"
    return "git"


def walk_repository(root: Path, settings: Settings) -> tuple[dict[str, str], dict[str, int]]:
    """Map relative path -> exact file text, and counts of skipped files by reason."""
    extra = [p.strip() for p in settings.crawl.repo_ignore.split(",") if p.strip()]
    content: dict[str, str] = {}
    skipped: dict[str, int] = {}

    def skip(reason: str) -> None:
        skipped[reason] = skipped.get(reason, 0) + 1

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(
            d for d in dirnames if d not in IGNORE_DIRS and not any(fnmatch.fnmatch(d, p) for p in extra)
        )
        for fname in sorted(filenames):
            rel = (rel_dir / fname).as_posix()
            path = Path(dirpath) / fname
            if any(fnmatch.fnmatch(fname, p) for p in IGNORE_FILES) or any(fnmatch.fnmatch(rel, p) for p in extra):
                skip("ignored")
                continue
            if path.is_symlink() or not path.is_file():
                skip("symlink")
                continue
            if path.stat().st_size > settings.crawl.repo_max_file_bytes:
                skip("too_large")
                continue
            data = path.read_bytes()
            if b"\x00" in data[:8192]:
                skip("binary")
                continue
            try:
                text = data.decode("utf-8")  # exact: no newline translation, whitespace kept
            except UnicodeDecodeError:
                skip("not_utf8")
                continue
            if len(content) >= settings.crawl.repo_max_files:
                skip("over_file_limit")
                continue
            content[rel] = text
    return content, skipped
