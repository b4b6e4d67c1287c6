"""gunicorn settings shared by every web server the project starts.

`make run` (scripts/run.py), docker-compose's `web`, the test servers (tests/helpers.py,
tests/reliability/stack.py) and the benchmarks (bench/gunicorn_server.py, bench/soak.py)
all pass `--config` with this file and add only what differs between them: the address,
the number of workers and threads, the log level and the access log. It sits at the
repository root because that is every caller's working directory (and the image's
WORKDIR), where gunicorn also looks for `gunicorn.conf.py` on its own.
"""

wsgi_app = "analytics.wsgi"
# A request still running after this long is stuck (the slowest page answers in
# seconds); gunicorn restarts its worker. One value for every server, so tests and
# benchmarks see the timeouts users get.
timeout = 60
# On SIGTERM, in-flight requests get this long to finish: under docker's 10 s stop
# period and the test stacks' 15 s before they kill.
graceful_timeout = 5
