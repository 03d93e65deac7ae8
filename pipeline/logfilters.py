"""Logging filters referenced by `ray_data_logging.yaml`."""

import logging


class DropProgressNotice(logging.Filter):
    """Drop Ray Data's "Progress bars disabled" notice, printed once by every split coordinator."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Progress bars disabled")
