"""The benchmarks' threaded HTTP server on 127.0.0.1, with a listen backlog that does not drop connections."""
import http.server


class LoopbackServer(http.server.ThreadingHTTPServer):
    # The standard library's listen backlog is 5: with more connections arriving at once, the kernel drops
    # SYNs and clients wait a second to try again, which measured the backlog, not the fetcher.
    request_queue_size = 128
