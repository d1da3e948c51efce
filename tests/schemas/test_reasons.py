"""Every reason class a stage can write is listed once in schemas/reasons.py, with a meaning and a fix."""
import re

import pytest

from conftest import ROOT
from schemas.reasons import REASON_CLASSES, REASONS, is_reason_class, markdown_table

# Where code names a reason class: MediaError("x", ...), _Transient("x", ...), and the read/layout stages'
# dead-letter constructors (_dead_letter(rows, r, "x", ...), DeadLetter(file, row, STAGE, "x", ...), _reject(..., "x", ...)).
RAISED = re.compile(r'(?:MediaError|_Transient)\(\s*"([a-z0-9_]+)"|_dead_letter\([^"\n]*?"([a-z0-9_]+)"'
                    r'|DeadLetter\([^"\n]*?STAGE, "([a-z0-9_]+)"|_reject\([^"\n]*?"([a-z0-9_]+)"')


def classes_in_code() -> set:
    found = set()
    for path in (ROOT / "transforms").rglob("*.py"):
        for match in RAISED.finditer(path.read_text()):
            found.add(next(group for group in match.groups() if group))
    return found


def test_the_scan_finds_the_code_s_reason_classes():
    found = classes_in_code()
    assert {"field_count", "modality", "empty_value", "decode_timeout", "docarray_unreadable"} <= found


@pytest.mark.parametrize("name", sorted(classes_in_code()))
def test_every_reason_class_in_the_code_is_listed(name):
    assert is_reason_class(name), f"add {name!r} to schemas/reasons.py"


def test_each_class_is_listed_once_with_a_meaning_and_a_fix():
    listed = [c for reason in REASONS for c in reason.classes]
    assert len(listed) - len(set(listed)) == listed.count("truncated") - 1  # truncated: a transfer and an image
    assert all(reason.meaning and reason.fix for reason in REASONS)


def test_http_status_classes():
    assert is_reason_class("http_404") and is_reason_class("http_503")
    assert not is_reason_class("http_4040") and not is_reason_class("made_up")
    assert "http_<code>" not in REASON_CLASSES


def test_the_readme_table_lists_every_class():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme
