"""Logging filters named in the LOGGING setting."""

import logging


class WithoutTraceback(logging.Filter):
    """Drop the traceback of a record that describes a client's mistake, not the server's.

    Django logs a request with a bad Host header (django.security.DisallowedHost) with
    its traceback; bots send thousands, and a traceback in the log should mean a bug.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True
