"""The URI rules: local or remote, absolute or relative, and relative paths resolved against a folder."""
import posixpath

import pytest

from transforms.uris import common_folder, folder_within, is_absolute, is_local, is_remote, resolve


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


@pytest.mark.parametrize("urls, root", [
    (["/a/b/x.csv", "/a/c/y.csv"], "/a"),
    (["/a/x.csv"], "/a"),
    (["/x.csv", "/a/y.csv"], "/"),
    (["gs://b/d/x.csv", "gs://b/d/e/y.csv"], "gs://b/d"),
    (["gs://a/x.csv", "gs://b/y.csv"], "gs://"),
    (["gs://b/x.csv", "/a/y.csv"], None),
    (["gs://b/x.csv", "s3://b/y.csv"], None),
    ([], None),
])
def test_the_common_folder_of_input_files(urls, root):
    assert common_folder(urls) == root


@pytest.mark.parametrize("url, root, folder", [
    ("/a/b/x.csv", "/a", "b"), ("/a/x.csv", "/a", ""), ("/x.csv", "/", ""), ("/a/b/c/x.csv", "/", "a/b/c"),
    ("gs://b/d/e/y.csv", "gs://b/d", "e"), ("gs://a/x.csv", "gs://", "a"), ("/a/b/x.csv", None, "/a/b"),
])
def test_a_files_folder_within_the_root(url, root, folder):
    assert folder_within(url, root) == folder


@pytest.mark.parametrize("url", ["/a/b/x.csv", "/a/x.csv", "/x.csv", "gs://b/d/e/y.csv", "gs://a/x.csv"])
def test_a_path_kept_relative_to_the_root_reads_the_file_the_csv_named(url):
    """What layout keeps (the CSV's folder within the root, then the path) resolves, by the media stage's
    rule, to the path joined to the CSV's own folder."""
    root = common_folder([url, "gs://a/y.csv" if "://" in url else "/y.csv"])
    kept = posixpath.join(folder_within(url, root), "img/1.jpg")
    assert resolve(kept, root) == posixpath.join(posixpath.dirname(url), "img/1.jpg")
