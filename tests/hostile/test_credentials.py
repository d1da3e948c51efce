"""URL credentials (scheme://user:password@host) are used to fetch but never written: not in documents'
uri, not in dead letters' reason or raw row, not in the manifest."""
import json

import pyarrow.parquet as pq
from PIL import Image

from conftest import dead_letters, run_prepare
from transforms.uris import redact

SECRET = "s3cr3t-pa55"


def test_redact_removes_user_and_password_from_every_url_in_a_text():
    text = f"https://bob:{SECRET}@example.com/a.jpg?x=1 then ftp://alice@files.example/b.off and mail a@b.c"
    assert redact(text) == ("https://REDACTED@example.com/a.jpg?x=1 then ftp://REDACTED@files.example/b.off "
                            "and mail a@b.c")


def test_credentials_never_reach_the_dataset(http_server, tmp_path):
    Image.new("RGB", (8, 8), "red").save(http_server.root / "red.png")
    base = http_server.url("/files/").replace("http://", f"http://bob:{SECRET}@")
    out = run_prepare(tmp_path, f"{base}red.png,red\n{base}missing.png,red\n", "--is-labeled",
                      "--allow-private-network", "--fetch-retries", "0")
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert SECRET.encode() not in written and b"bob:" not in written
    (document,) = pq.read_table(next((out / "documents").glob("*.parquet"))).to_pylist()
    assert document["uri"].startswith("http://REDACTED@127.0.0.1:") and document["width"] == 8
    (letter,) = dead_letters(out)
    assert letter["reason_class"] == "http_404" and "REDACTED@" in letter["raw"] and SECRET not in letter["reason"]
    assert SECRET not in json.dumps(json.loads((out / "manifest.json").read_text()))
