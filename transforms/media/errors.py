"""The one exception the media functions raise for a file they cannot turn into training data."""


class MediaError(Exception):
    """A media file that becomes a dead letter: reason_class is a short key (`http_404`, `timeout`,
    `not_an_image`, `truncated`, `decompression_bomb`, `mesh_empty`, ...), reason a sentence for a person."""

    def __init__(self, reason_class: str, reason: str):
        super().__init__(reason)
        self.reason_class = reason_class
        self.reason = reason

    def __reduce__(self):  # pickled with both fields (the decode sandbox sends it between processes)
        return MediaError, (self.reason_class, self.reason)
