"""The one home of the URI rules every stage shares: local or remote, absolute or relative to a folder."""
import posixpath
import re
from typing import Optional, Union

import pyarrow as pa
import pyarrow.compute as pc

# A value that needs no base folder: it has a scheme (`gs://...`) or is an absolute path.
ABSOLUTE_URI = r"^([a-zA-Z][a-zA-Z0-9+.-]*://|/)"
_ABSOLUTE = re.compile(ABSOLUTE_URI)


# user:password@ (or user@) after a scheme, anywhere in a text: credentials never reach what a run writes.
# Bounded repetitions keep the search linear on hostile text (a 1 MB "URL" of letters took forever).
CREDENTIALS = r"([a-zA-Z][a-zA-Z0-9+.-]{0,31}://)[^/@\s?#]{1,512}@"
REDACTED = r"\1REDACTED@"
_CREDENTIALS = re.compile(CREDENTIALS)


def redact(text: str) -> str:
    """A text with the credentials of every URL in it (scheme://user:pass@host) replaced by REDACTED."""
    return _CREDENTIALS.sub(REDACTED, text) if "@" in text else text


def has_credentials(text: str) -> bool:
    """True when a URL in the text carries credentials (or their REDACTED stand-in)."""
    return "@" in text and _CREDENTIALS.search(text) is not None


def redact_column(values: Union[pa.Array, pa.ChunkedArray]) -> Union[pa.Array, pa.ChunkedArray]:
    """redact() over a string column, vectorized (nulls stay null); a column with no "@" in it is returned as
    it is (finding none is several times cheaper than the regular expression)."""
    if not pc.any(pc.match_substring(values, "@")).as_py():  # None when every value is null
        return values
    return pc.replace_substring_regex(values, CREDENTIALS, REDACTED)


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


def common_folder(urls: list[str]) -> Optional[str]:
    """The deepest folder holding every file in `urls` (absolute paths, or URLs of one scheme), or None
    when they have no common folder (local and remote files, or two schemes). Relative media paths in a
    dataset are kept relative to it: the same dataset on another machine means the same files."""
    schemes = {url.split("://", 1)[0] if "://" in url else "" for url in urls}
    if not urls or len(schemes) != 1:
        return None
    scheme = schemes.pop()
    prefix = f"{scheme}://" if scheme else ""
    folders = [posixpath.dirname(url.removeprefix(prefix)) for url in urls]
    if not scheme and not all(folder.startswith("/") for folder in folders):
        return None
    return prefix + posixpath.commonpath(folders)


def folder_within(file_url: str, root: Optional[str]) -> str:
    """The folder of `file_url`, relative to `root` (a common_folder of it; '' when it is the root); its
    absolute folder when there is no root."""
    folder = posixpath.dirname(file_url)
    if root is None:
        return folder
    return folder[len(root):].lstrip("/") if folder.startswith(root) else folder


def redact_documents(table: pa.Table) -> pa.Table:
    """Documents with the credentials removed from `uri`, `source_file` and the chunks' `uri` (after ids
    were given: a document's id still comes from the URI it was fetched by)."""
    for name in ("uri", "source_file"):
        index = table.schema.get_field_index(name)
        table = table.set_column(index, table.schema.field(index), redact_column(table.column(name)))
    chunks = table.column("chunks").combine_chunks()
    if len(chunks) and chunks.null_count < len(chunks):
        values = chunks.values
        fields = [redact_column(values.field(f.name)) if f.name == "uri" else values.field(f.name) for f in values.type]
        rebuilt = pa.ListArray.from_arrays(chunks.offsets, pa.StructArray.from_arrays(fields, fields=list(values.type)),
                                           mask=chunks.is_null())
        index = table.schema.get_field_index("chunks")
        table = table.set_column(index, table.schema.field(index), rebuilt.cast(table.schema.field(index).type))
    return table
