"""The project's ASGI application with the candidate change named by BENCH_VARIANT installed.

For `ingest_http.py --variant`: `daphne asgi_variant:application` (benchmarks/ on PYTHONPATH).
"""

import os

from variants import install_variant

from robotest_site.asgi import application  # noqa: F401  (sets Django up first)

install_variant(os.environ.get("BENCH_VARIANT", "as-is"))
