"""transforms/media/host_limits.py: slots held with flock across instances (processes), the circuit breaker."""
import threading
import time

import pytest

from transforms.media.host_limits import HostGiveUp, HostLimits, host_key


def test_host_keys_are_file_names_and_tell_hosts_apart():
    a, b = host_key("http", "Example.COM", 80), host_key("https", "example.com", 443)
    assert a != b and "/" not in a and a.startswith("example.com-80-")
    assert host_key("http", "[::1]", 8080) != host_key("http", "::1", 8081)


@pytest.mark.parametrize("shared", [True, False])
def test_no_more_than_the_limit_hold_a_slot_at_once(tmp_path, shared):
    limits = [HostLimits(str(tmp_path) if shared else None, 2, 5) for _ in range(2 if shared else 1)]
    held, most, lock = [0], [0], threading.Lock()

    def work(i):
        with limits[i % len(limits)].slot("h"):
            with lock:
                held[0] += 1
                most[0] = max(most[0], held[0])
            time.sleep(0.02)
            with lock:
                held[0] -= 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most[0] == 2


def test_a_host_is_given_up_after_consecutive_failures_only(tmp_path):
    limits = HostLimits(str(tmp_path), 2, 3)
    for _ in range(4):
        limits.record("h", failed=True, reason="refused")
        limits.record("h", failed=True, reason="refused")
        limits.record("h", failed=False)
    assert limits.down_reason("h") is None
    for _ in range(3):
        limits.record("h", failed=True, reason="connection refused")
    assert "3 consecutive" in limits.down_reason("h") and "connection refused" in limits.down_reason("h")
    assert HostLimits(str(tmp_path), 2, 3).down_reason("h") == limits.down_reason("h")  # another process sees it
    assert limits.down_reason("other") is None


def test_waiting_for_a_slot_ends_when_the_host_is_given_up_or_the_caller_stops(tmp_path):
    limits = HostLimits(str(tmp_path), 1, 1)
    with limits.slot("h"):
        with pytest.raises(HostGiveUp):
            with limits.slot("h", stop=lambda: True):
                pass
        limits.record("h", failed=True, reason="timeout")
        with pytest.raises(HostGiveUp):
            with limits.slot("h"):
                pass
