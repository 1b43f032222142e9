"""Benchmarks against a real stack: `make bench [SIZE=small|full]` or `python -m bench.run`.

Everything runs isolated from development and tests: its own PostgreSQL database
(`mailhost_bench`, dropped and re-created each run), Redis database 9, a mail stack in a short
/tmp state dir on free ports, a real Celery worker and a real gunicorn, all started and stopped
by `bench.run`. Results: a table on stdout and var/bench/results.json; see docs/benchmarks.md.

Django is set up by the runner only after `bench.env.configure()` has written the environment
that the runner and its subprocesses share, so import Django-dependent modules lazily.
"""
