# One image for the API and the worker (docker-compose.yml runs it twice with different commands).
FROM python:3.11-slim

# Production unless told otherwise: the API then refuses to start with the development JWT secret (which
# anyone can read in the code), disabled auth or clear Temporal payloads. Run it with PRM_JWT_SECRET and
# PRM_PAYLOAD_ENCRYPTION_KEYS set (docker-compose.yml shows how).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRM_ENV=production

WORKDIR /app

# The service installs into site-packages like any package; the sources in /app only feed `pip install .`.
COPY pyproject.toml README.md alembic.ini ./
COPY api ./api
COPY core ./core
COPY domain ./domain
COPY workflows ./workflows
COPY activities ./activities
COPY cli ./cli
COPY migrations ./migrations
COPY worker.py ./
RUN pip install . \
    && useradd --create-home --uid 10001 --user-group prm \
    && mkdir -p /var/lib/prm/anchors && chown prm:prm /var/lib/prm/anchors

USER prm
EXPOSE 8000

# docker-compose.yml overrides this for the worker (`prm worker`) and to migrate before serving.
# httptools + uvloop (uvicorn[standard]); the access log is the app's own (`prm.access`), not uvicorn's;
# no `server: uvicorn` header (it tells a scanner what to try).
CMD ["uvicorn", "--factory", "api.app:create_app_from_env", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", \
     "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--no-server-header"]
