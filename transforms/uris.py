"""The one home of the URI rules every stage shares: local or remote, absolute or relative to a folder."""
import posixpath
import re

# A value that needs no base folder: it has a scheme (`gs://...`) or is an absolute path.
ABSOLUTE_URI = r"^([a-zA-Z][a-zA-Z0-9+.-]*://|/)"
_ABSOLUTE = re.compile(ABSOLUTE_URI)


def is_local(url: str) -> bool:
    """True for plain paths and file:// URLs."""
    return "://" not in url or url.startswith("file://")


def is_remote(url: str) -> bool:
    """True for URLs with a scheme other than file://."""
    return not is_local(url)


def is_absolute(uri: str) -> bool:
    """True for a URL with a scheme or an absolute path: it means the same whatever folder it is read from."""
    return bool(_ABSOLUTE.match(uri))


def resolve(uri: str, base: str) -> str:
    """A relative path joined to the folder `base` (of the file that named it); absolute URIs unchanged."""
    return uri if is_absolute(uri) or not base else posixpath.join(base, uri)
