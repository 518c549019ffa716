"""Entry point of one publisher process of `qinghe simulate sensors` (started by ingest.simulate)."""

from __future__ import annotations

import logging
import sys

from ingest.simulate import worker_stdio

if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(worker_stdio())
