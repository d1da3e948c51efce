"""transforms.media.errors: a MediaError keeps its reason class and reason, also across a pickle (the
decode sandbox sends it from its child process to the worker)."""
import pickle

import pytest

from transforms.media.errors import MediaError


def test_fields_and_message():
    error = MediaError("http_404", "the server answered 404 Not Found.")
    assert error.reason_class == "http_404"
    assert error.reason == "the server answered 404 Not Found."
    assert str(error) == "the server answered 404 Not Found."
    assert isinstance(error, Exception)


def test_raised_and_caught_with_its_fields():
    with pytest.raises(MediaError) as caught:
        raise MediaError("mesh_empty", "the file has no points.")
    assert (caught.value.reason_class, caught.value.reason) == ("mesh_empty", "the file has no points.")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_survives_pickling(protocol):
    error = MediaError("decode_timeout", "decoding took longer than --decode-timeout 1s, with ünïcode.")
    copy = pickle.loads(pickle.dumps(error, protocol=protocol))
    assert type(copy) is MediaError
    assert (copy.reason_class, copy.reason, str(copy)) == (error.reason_class, error.reason, str(error))


def test_survives_pickling_inside_an_answer():
    """The sandbox's answer is a tuple around the error, sometimes in a list of results."""
    answer = ("ok", [MediaError("truncated", "cut short."), None])
    status, (error, nothing) = pickle.loads(pickle.dumps(answer))
    assert status == "ok" and nothing is None
    assert (error.reason_class, error.reason) == ("truncated", "cut short.")
