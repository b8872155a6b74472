"""LinkedIn: log in with a headless browser, scroll the author's recent activity, one post document per post.

Credentials come from settings (``TWIN_LINKEDIN_LI_AT`` session cookie, or ``TWIN_LINKEDIN_USERNAME``
plus ``TWIN_LINKEDIN_PASSWORD``; in a cluster both come from the task secret). ``TWIN_LINKEDIN_BASE_URL``
points the crawler at another host (the tests' fixture server).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

from twin_core.domain.challenge import challenge_marker, login_wall_marker
from twin_core.domain.documents import PostDocument, RawDocument
from twin_core.etl.browser import headless_chrome, open_page
from twin_core.etl.crawlers.base import BaseCrawler, CrawlContext, on_platform
from twin_core.etl.errors import CrawlError
from twin_core.etl.safety import check_target
from twin_core.settings import Settings

log = logging.getLogger(__name__)
_PROFILE = re.compile(r"/in/([^/?#]+)")
POST_SELECTOR = '[data-urn^="urn:li:activity:"]'
TEXT_SELECTORS = (".update-components-text", ".feed-shared-inline-show-more-text", ".feed-shared-text")


class LinkedInCrawler(BaseCrawler):
    name = "linkedin"
    priority = 10

    def matches(self, link: str, settings: Settings) -> bool:
        return on_platform(link, "linkedin.com", settings.sources.linkedin_base_url)

    def crawl(self, link: str, ctx: CrawlContext) -> list[RawDocument]:
        s = ctx.settings
        if not s.sources.linkedin_li_at and not (s.sources.linkedin_username and s.sources.linkedin_password):
            raise CrawlError(
                "credentials",
                "LinkedIn needs credentials: set TWIN_LINKEDIN_LI_AT (session cookie) or "
                "TWIN_LINKEDIN_USERNAME and TWIN_LINKEDIN_PASSWORD",
            )
        profile = _PROFILE.search(urlsplit(link).path)
        if not profile:
            raise CrawlError("unsupported_link", f"{link} is not a LinkedIn profile (expected /in/<name>/)")
        base = s.sources.linkedin_base_url.rstrip("/")
        check_target(base + "/", s)
        activity = f"{base}/in/{profile.group(1)}/recent-activity/all/"

        with headless_chrome(s) as driver:
            self._login(driver, base, s)
            open_page(driver, activity, s)
            self._check_page(driver, activity)
            posts = self._scroll_and_collect(driver, s)
        if not posts:
            raise CrawlError("empty", f"no posts found on {activity}")
        docs: list[RawDocument] = []
        for urn, text, image in posts:
            if login_wall_marker(text) or challenge_marker(text):
                ctx.notes.append(f"skipped {urn}: login wall or challenge text")
                continue
            docs.append(
                PostDocument(
                    link=f"{base}/feed/update/{urn}/",
                    platform="linkedin",
                    author_id=ctx.user.id,
                    author_full_name=ctx.user.full_name,
                    content={"Content": text},
                    image=image,
                )
            )
        return docs

    def _login(self, driver: Any, base: str, s: Settings) -> None:
        from selenium.webdriver.common.by import By

        if s.sources.linkedin_li_at:
            open_page(driver, base + "/", s)  # a cookie can only be set on the site's own origin
            driver.add_cookie({"name": "li_at", "value": s.sources.linkedin_li_at.get_secret_value(), "path": "/"})
            return
        open_page(driver, base + "/login", s)
        driver.find_element(By.ID, "username").send_keys(s.sources.linkedin_username or "")
        driver.find_element(By.ID, "password").send_keys(
            s.sources.linkedin_password.get_secret_value() if s.sources.linkedin_password else ""
        )
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        deadline = time.monotonic() + s.sources.browser_timeout_s
        while "/login" in driver.current_url and time.monotonic() < deadline:
            time.sleep(0.1)
        if "/login" in driver.current_url or "/checkpoint" in driver.current_url:
            raise CrawlError("login_failed", "LinkedIn login failed (wrong credentials or a security checkpoint)")

    def _check_page(self, driver: Any, url: str) -> None:
        current = driver.current_url
        if any(part in current for part in ("/login", "/authwall", "/checkpoint")):
            raise CrawlError("login_failed", f"LinkedIn refused the session for {url} (redirected to {current})")
        marker = challenge_marker(driver.page_source[:50000])
        if marker:
            raise CrawlError("challenge", f"{url} returned an anti-bot challenge ({marker!r})")

    def _scroll_and_collect(self, driver: Any, s: Settings) -> list[tuple[str, str, str | None]]:
        from selenium.webdriver.common.by import By

        max_posts, max_scrolls = s.sources.linkedin_max_posts, s.sources.linkedin_max_scrolls

        def collect() -> list[tuple[str, str, str | None]]:
            found: dict[str, tuple[str, str, str | None]] = {}
            for el in driver.find_elements(By.CSS_SELECTOR, POST_SELECTOR):
                urn = el.get_attribute("data-urn")
                if not urn or urn in found:
                    continue
                text = ""
                for sel in TEXT_SELECTORS:
                    parts = el.find_elements(By.CSS_SELECTOR, sel)
                    if parts:
                        text = parts[0].get_attribute("innerText").strip()
                        break
                images = el.find_elements(By.CSS_SELECTOR, ".update-components-image img")
                image = images[0].get_attribute("src") if images else None
                if text:
                    found[urn] = (urn, text, image)
            return list(found.values())

        posts = collect()
        for _ in range(max_scrolls):
            if len(posts) >= max_posts:
                break
            driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
            deadline = time.monotonic() + s.sources.linkedin_scroll_wait_s  # the feed loads more on scroll
            before = len(posts)
            while time.monotonic() < deadline:
                time.sleep(0.2)
                posts = collect()
                if len(posts) > before:
                    break
            if len(posts) == before:
                break  # end of the feed
        return posts[:max_posts]
