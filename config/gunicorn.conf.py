"""gunicorn settings for Yiti OA: ``gunicorn -c config/gunicorn.conf.py 'core:create_app()'``.

Every value can be overridden with the matching ``GUNICORN_*``-style command-line flag. The app keeps
no state in the process, so workers (and servers) can be added freely.
"""
import multiprocessing
import os

bind = os.environ.get("YITI_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("YITI_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("YITI_THREADS", 2))
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 2000          # recycle workers now and then
max_requests_jitter = 200
accesslog = "-"
errorlog = "-"
forwarded_allow_ips = os.environ.get("YITI_FORWARDED_ALLOW_IPS", "127.0.0.1")
