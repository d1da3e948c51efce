"""The URI rules: local or remote, absolute or relative, and relative paths resolved against a folder."""
import pytest

from transforms.uris import is_absolute, is_local, is_remote, resolve


@pytest.mark.parametrize("url, local", [
    ("data/a.csv", True),
    ("/data/a.csv", True),
    ("a.jpg", True),
    ("file:///data/a.csv", True),
    ("gs://bucket/a.csv", False),
    ("http://host/a.jpg", False),
    ("https://host/a.jpg?s=1", False),
    ("memory://x/a.csv", False),
])
def test_local_and_remote(url, local):
    assert is_local(url) is local
    assert is_remote(url) is (not local)


@pytest.mark.parametrize("uri, absolute", [
    ("/data/a.jpg", True),
    ("file:///data/a.jpg", True),
    ("gs://bucket/a.jpg", True),
    ("http://host/a.jpg", True),
    ("https://host/a.jpg", True),
    ("s3+x.y-z://b/a.jpg", True),
    ("a.jpg", False),
    ("images/a.jpg", False),
    ("./images/a.jpg", False),
    ("../a.jpg", False),
    ("1http://host/a.jpg", False),  # a scheme starts with a letter
    ("C:a.jpg", False),
])
def test_absolute(uri, absolute):
    assert is_absolute(uri) is absolute


@pytest.mark.parametrize("uri, base, expected", [
    ("a.jpg", "/data/csv", "/data/csv/a.jpg"),
    ("images/a.jpg", "gs://bucket/folder", "gs://bucket/folder/images/a.jpg"),
    ("images/a.jpg", "https://host/x", "https://host/x/images/a.jpg"),
    ("../a.jpg", "/data/csv", "/data/csv/../a.jpg"),
    ("a.jpg", "relative/folder", "relative/folder/a.jpg"),
    ("a.jpg", "", "a.jpg"),
    ("/abs/a.jpg", "/data/csv", "/abs/a.jpg"),
    ("gs://other/a.jpg", "/data/csv", "gs://other/a.jpg"),
    ("http://host/a.jpg", "gs://bucket", "http://host/a.jpg"),
    ("file:///abs/a.jpg", "/data", "file:///abs/a.jpg"),
])
def test_resolve(uri, base, expected):
    assert resolve(uri, base) == expected
