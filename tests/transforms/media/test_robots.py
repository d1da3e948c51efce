"""transforms/media/robots.py: X-Robots-Tag parsing, and robots.txt verdicts kept once per host per run."""
import pytest

from transforms.media.robots import RobotsRules, opt_out, product_token

UA = "finetune-etl/0.3.0 (+https://github.com/finetune-etl/finetune-etl)"


def test_the_product_token_is_the_name_before_the_version():
    assert product_token(UA) == "finetune-etl"
    assert product_token("Acme-ETL/2 (+https://acme.test)") == "acme-etl"
    assert product_token("plainname") == "plainname"


@pytest.mark.parametrize("values, expected", [
    ([], None), (["noindex"], None), (["noai"], "noai"), (["NOIMAGEAI"], "noimageai"), (["noml"], "noml"),
    (["none"], "none"), (["noindex", "nofollow, noai"], "noai"), (["otherbot: noai"], None),
    (["finetune-etl: noml"], "noml"), (["*: noai"], "noai"), (["otherbot: noai, nofollow"], None),
    (["otherbot: noai", "finetune-etl: none"], "none"), (["max-image-preview: none"], None),
    (["unavailable_after: 2030-01-01, noai"], "noai"),
])
def test_x_robots_tag_values(values, expected):
    assert opt_out(values, UA) == expected


def test_a_verdict_is_read_once_and_shared_through_the_run_folder(tmp_path):
    reads = []

    def read(url):
        reads.append(url)
        return 200, b"User-agent: finetune-etl\nDisallow: /private/\n"

    rules = RobotsRules(str(tmp_path))
    assert rules.refusal("h", "http://h/robots.txt", "http://h/a.jpg", UA, read) is None
    assert "disallows it" in rules.refusal("h", "http://h/robots.txt", "http://h/private/b.jpg", UA, read)
    other_process = RobotsRules(str(tmp_path))
    assert other_process.refusal("h", "http://h/robots.txt", "http://h/private/c.jpg", UA, read) is not None
    assert reads == ["http://h/robots.txt"]


def test_a_failed_read_is_not_remembered(tmp_path):
    answers = iter([ConnectionError("down"), (404, b"")])

    def read(url):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    rules = RobotsRules(None)
    with pytest.raises(ConnectionError):
        rules.refusal("h", "http://h/robots.txt", "http://h/a.jpg", UA, read)
    assert rules.refusal("h", "http://h/robots.txt", "http://h/a.jpg", UA, read) is None
