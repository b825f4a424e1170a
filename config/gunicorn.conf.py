"""gunicorn settings for Yiti OA: ``gunicorn -c config/gunicorn.conf.py 'core:create_app()'``.

The app itself is configured by ``YITI_*`` variables (see ``config/yiti.env.example``); the few
variables below shape the server. Flags on gunicorn's command line override this file. The app
keeps no state in the process, so workers (and servers) can be added freely — with PostgreSQL and
Redis; ``yiti check`` says when the settings do not allow it.
"""
import multiprocessing
import os

wsgi_app = "core:create_app()"  # so `gunicorn -c config/gunicorn.conf.py` alone works too
bind = os.environ.get("YITI_BIND", "127.0.0.1:8000")  # nginx in front; see config/nginx/yiti.conf
# YITI_WORKERS, else gunicorn's usual WEB_CONCURRENCY, else 2 x CPUs + 1 (`yiti check` mirrors this).
workers = int(os.environ.get("YITI_WORKERS") or os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
threads = int(os.environ.get("YITI_THREADS", 2))
timeout = 60
graceful_timeout = 30
keepalive = 5
max_requests = 2000          # recycle workers now and then
max_requests_jitter = 200
accesslog = "-"              # to the journal under systemd
errorlog = "-"
# Addresses whose X-Forwarded-Proto gunicorn believes (the app's own PROXY_FIX handles the rest).
forwarded_allow_ips = os.environ.get("YITI_FORWARDED_ALLOW_IPS", "127.0.0.1")
