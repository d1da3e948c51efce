"""Whether a site lets us fetch a file: its robots.txt (RFC 9309, parsed by protego) and the X-Robots-Tag
opt-outs a response carries (noai, noimageai, noml, none).

robots.txt is read once per host per run: kept in this process, and in the run's shared host-state folder
so the run's other processes on the machine read the file instead of the site. Reading it is left to the
caller (`read(url) -> (status, body)`), which fetches with every address check of a media request.
"""
import json
import os
import re
import tempfile
import threading
from typing import Callable, Optional

from protego import Protego

ROBOTS_MAX_BYTES = 512 * 1024  # RFC 9309: crawlers must parse at least 500 KiB
OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noml", "none")
# X-Robots-Tag directives that take a value after a colon (anything else before a colon names a user agent)
_VALUED = {"unavailable_after", "max-snippet", "max-image-preview", "max-video-preview"}
_AGENT_PREFIX = re.compile(r"^\s*([A-Za-z0-9_.*-]+)\s*:\s*(.*)$")


def product_token(user_agent: str) -> str:
    """'finetune-etl/0.1.0 (+https://...)' -> 'finetune-etl': the name sites address us by."""
    return user_agent.split("/", 1)[0].split()[0].lower()


def opt_out(header_values: list[str], user_agent: str) -> Optional[str]:
    """The values of a response's X-Robots-Tag headers -> the opt-out directive that applies to us
    (`noai`, `noimageai`, `noml` or `none`), or None. Directives after `name:` apply to that user agent only."""
    token = product_token(user_agent)
    for value in header_values:
        agent = None
        for part in value.split(","):
            match = _AGENT_PREFIX.match(part)
            if match and match.group(1).lower() not in _VALUED:
                agent, part = match.group(1).lower(), match.group(2)
            directive = part.strip().lower()
            if directive in OPT_OUT_DIRECTIVES and agent in (None, "*", token):
                return directive
    return None


class RobotsRules:
    """robots.txt verdicts for the hosts of one run (folder: the run's host-state folder, or None)."""

    def __init__(self, folder: Optional[str]):
        self.folder = folder
        self._lock = threading.Lock()
        self._host_locks: dict[str, threading.Lock] = {}
        self._answers: dict[str, tuple[int, str]] = {}
        self._rules: dict[str, Protego] = {}

    def refusal(self, key: str, robots_url: str, url: str, user_agent: str,
                read: Callable[[str], tuple[int, bytes]]) -> Optional[str]:
        """Why robots.txt forbids fetching `url` (a sentence), or None when it allows it.

        key names the host (host_limits.host_key); robots_url is its /robots.txt; read(robots_url) ->
        (HTTP status, body) may raise (a transport failure: nothing is remembered, the caller's error stands).
        2xx: the rules apply; 4xx: no rules (all allowed); 5xx: everything disallowed (RFC 9309 2.3.1.4)."""
        status, text = self._answer(key, robots_url, read)
        if 400 <= status < 500:
            return None
        if status >= 500 or status < 200:
            return (f"its host's robots.txt answered HTTP {status}; RFC 9309 says to fetch nothing from a site "
                    "until its robots.txt can be read")
        if self._parsed(key, text).can_fetch(url, user_agent):
            return None
        return f"{robots_url} disallows it for user agent {product_token(user_agent)!r}"

    def _parsed(self, key: str, text: str) -> Protego:
        with self._lock:
            rules = self._rules.get(key)
        if rules is None:
            rules = Protego.parse(text)
            with self._lock:
                self._rules[key] = rules
        return rules

    def _answer(self, key: str, robots_url: str, read) -> tuple[int, str]:
        with self._lock:
            if key in self._answers:
                return self._answers[key]
            host_lock = self._host_locks.setdefault(key, threading.Lock())
        with host_lock:  # one thread per host reads it; the others wait for its answer
            with self._lock:
                if key in self._answers:
                    return self._answers[key]
            answer = self._shared(key)
            if answer is None:
                status, body = read(robots_url)
                answer = (status, body[:ROBOTS_MAX_BYTES].decode("utf-8", errors="replace"))
                self._share(key, answer)
            with self._lock:
                self._answers[key] = answer
            return answer

    def _shared(self, key: str) -> Optional[tuple[int, str]]:
        if self.folder is None:
            return None
        try:
            with open(os.path.join(self.folder, key, "robots.json"), encoding="utf-8") as handle:
                stored = json.load(handle)
            return stored["status"], stored["text"]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _share(self, key: str, answer: tuple[int, str]) -> None:
        if self.folder is None:
            return
        folder = os.path.join(self.folder, key)
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, encoding="utf-8") as handle:
            json.dump({"status": answer[0], "text": answer[1]}, handle)
        os.replace(handle.name, os.path.join(folder, "robots.json"))
