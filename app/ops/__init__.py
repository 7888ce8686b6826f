"""Operating the server: rate limits (ratelimit.py), Prometheus metrics (metrics.py), JSON logs
(logs.py) and the one-line hooks other modules call (events.py). See docs/operations.md."""
