"""The one home of dead-letter reason classes: every `reason_class` a stage may write, what it means and the
fix, as the README's table shows them. A test keeps the code, this list and the README in step."""
import re
from typing import NamedTuple


class Reason(NamedTuple):
    """Reason classes that share a meaning and a fix."""

    classes: tuple
    meaning: str
    fix: str


REASONS = (
    Reason(("field_count",), "the row has more or fewer fields than the file's rows",
           'quote fields containing the delimiter with straight `"` (typographic “ ” are not quotes)'),
    Reason(("encoding",), "bytes not valid in `--encoding`", "pass the file's encoding"),
    Reason(("empty_value",), "a content or label cell is empty", "fill or drop the row"),
    Reason(("score",), "the score is not a number in [0, 1]", "`--score-scale S` for other scales"),
    Reason(("modality",), "e.g. an image path in a text column", "fix the row or force `--modalities`"),
    Reason(("missing", "not_a_file", "path_not_allowed", "unreadable", "permission_denied"),
           "a media path that does not exist, is not a regular file, lies outside `--allowed-roots`, "
           "or cannot be read", "fix the path, its permissions or the roots"),
    Reason(("http_404", "http_403", "http_<code>"),
           "the server refused the file (not retried; 408, 429 and 5xx are retried first)", "fix the URL or access"),
    Reason(("timeout", "connection_error", "truncated", "tls_error", "fetch_error"),
           "the transfer failed on every attempt", "raise `--fetch-timeout` / `--fetch-retries`, or re-run the failed rows"),
    Reason(("private_address", "redirect_loop", "bad_redirect", "bad_uri"),
           "the URL resolves to a private address, loops, or cannot be fetched", "`--allow-private-network` for intranet data"),
    Reason(("robots_disallowed", "opted_out"),
           "the site's robots.txt disallows the file for our user agent (or cannot be read: HTTP 5xx), or the "
           "response carries `X-Robots-Tag: noai`, `noimageai`, `noml` or `none`",
           "respect it; `--ignore-opt-outs` only for your own servers"),
    Reason(("host_unreachable",),
           "the host was given up for the run after `--host-failure-threshold` consecutive connection errors, "
           "timeouts or DNS failures", "check the host (or `--no-fetch-remote`), then re-run the failed rows"),
    Reason(("remote_skipped",), "a remote media URL in a run with `--no-fetch-remote`", "drop the flag to fetch it"),
    Reason(("too_large",), "the file is larger than `--max-media-bytes`", "raise the limit"),
    Reason(("not_an_image", "truncated", "image_unreadable", "decompression_bomb"),
           "the bytes are not a complete image, or it has more pixels than `--max-image-pixels`",
           "replace the file, or raise the limit for trusted data"),
    Reason(("mesh_unreadable", "mesh_empty", "mesh_degenerate"),
           "trimesh cannot read it, it has no vertices, or no area to sample",
           "export the mesh again (e.g. as .glb with embedded buffers)"),
    Reason(("too_few_points",), "a file of points only (no faces) with fewer distinct points than `--min-points`",
           "lower `--min-points` (0 turns the check off), or export the mesh with its faces"),
    Reason(("docarray_unreadable", "empty_document"), "a `.docs` file that is not a DocList, or a document with no content",
           "re-save with `DocList.save_binary`"),
    Reason(("compressed",), "a CSV input that is gzip/bzip2/xz/zstd/zip-compressed (one dead letter for the file)",
           "decompress it and pass the CSV"),
    Reason(("nul_byte",), "a row with a NUL byte: binary data, or a UTF-16 file read as UTF-8", "`--encoding`, or clean the file"),
    Reason(("quote",), "a row whose quoted field is never closed before the end of the file", "close or remove the quote"),
    Reason(("decode_timeout", "decode_crashed", "decode_error"),
           "an image or mesh that takes longer than `--decode-timeout`, kills the decoder, or trips a bug in it",
           "raise `--decode-timeout`, or fix or drop the file"),
    Reason(("decode_memory",), "decoding the image or mesh needs more memory than `--decode-memory`",
           "raise `--decode-memory` for trusted data, or simplify the file"),
    Reason(("record_too_large",), "a CSV record longer than `--max-record-bytes` (often a quote never closed)",
           "raise `--max-record-bytes`, or fix the quoting"),
)

REASON_CLASSES = frozenset(c for reason in REASONS for c in reason.classes if "<" not in c)
_HTTP_STATUS = re.compile(r"http_\d{3}")


def is_reason_class(name: str) -> bool:
    """Whether a dead letter may carry this reason class (the listed ones, and http_<3-digit status>)."""
    return name in REASON_CLASSES or bool(_HTTP_STATUS.fullmatch(name))


def markdown_table() -> str:
    """The README's reason-class table."""
    rows = ["| reason_class | what it means | fix |", "|---|---|---|"]
    for reason in REASONS:
        rows.append(f"| {', '.join(f'`{c}`' for c in reason.classes)} | {reason.meaning} | {reason.fix} |")
    return "\n".join(rows)
