"""--fetch-timeout holds for every scheme: an FTP server that accepts connections and never answers costs
a row one timeout per attempt (it held a row 33 s with --fetch-timeout 2 --fetch-retries 0)."""
import socket
import threading

from schemas.options import MediaOptions
from transforms.media.fetch import fetch_one


def test_a_silent_ftp_server_becomes_a_timeout_dead_letter(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    threading.Thread(target=lambda: [accepted.append(listener.accept()) for _ in range(4)], daemon=True).start()
    url = f"ftp://127.0.0.1:{listener.getsockname()[1]}/a.jpg"
    options = MediaOptions(timeout=1.0, retries=1, backoff=0.01, allow_private_network=True)
    results = []
    worker = threading.Thread(target=lambda: results.append(fetch_one(url, options)), daemon=True)
    worker.start()
    worker.join(120)  # a safety net for the suite: the fetch itself ends after two 1 s attempts
    listener.close()
    (result,) = results
    assert result.error.reason_class == "timeout" and "--fetch-timeout 1s" in result.error.reason
    assert result.attempts == 2 and accepted
