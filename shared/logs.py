"""One log format for every process. Log lines carry ids and counts, never NIK or names."""

import logging


def configure(level: str) -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
