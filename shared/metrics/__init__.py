"""What an operator watches: Prometheus metrics and W3C trace context.

Workers record their numbers (steps by type, deliveries by outcome) as counters and histogram
buckets in Redis hashes under ``flowbin:metrics:``, buffered in each process and sent in one
pipeline at most once a second (``recorder``, ``buffer``); the API renders them, with jobs by
state read from the store and queue depth read from the broker's priority lists, at scrape time
(``collectors``, ``exposition``). The
API's own series (requests, sync runner pools) are prometheus_client metrics kept per process,
summed over gunicorn's processes by its multiprocess mode (``api_series``).
``traceparent`` reads a caller's W3C trace context, so that a job continues the caller's trace.

May import store, config, errors and states; nothing else of shared imports it but jobs (the
trace id of a new job), engine and delivery (what they record) and runs (the sync pools)."""
