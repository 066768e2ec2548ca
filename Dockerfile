# The project image: one image for every role in docker-compose.yml (stream workers, schema step,
# HTTP API, rq cron scheduler, rq maintenance worker, simulator); the command picks the role.
#
#   docker build -t agent-metrics-pipeline .
#   docker run --rm -e DATABASE_URL=... -e REDIS_URL=... agent-metrics-pipeline   # metrics-worker run

# --- build: the project as a wheel (no editable install, no source tree in the final image) ---
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- runtime ---
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# schema.sql: worker/schema.py looks for it at Path(__file__).parent.parent, the project root in a
# checkout. Installed (non-editable), the packages live in site-packages, where that path has no
# schema.sql. So the file is kept at /app and named by METRICS_SCHEMA_FILE, the override that
# worker/schema.py reads; /app holds nothing else, so every process runs the installed code.
WORKDIR /app
COPY schema.sql /app/schema.sql
ENV METRICS_SCHEMA_FILE=/app/schema.sql

# Fail the build, not the deployment: the schema file is found, the console scripts start, and
# the rq cron configuration module imports.
RUN python -c "from worker.schema import schema_path; p = schema_path(); assert p.is_file(), p" \
 && metrics-worker --help >/dev/null \
 && metrics-producer --help >/dev/null \
 && metrics-api --help >/dev/null \
 && python -c "import worker.maintenance.cron, worker.maintenance.jobs"

# Non-root, with a home: the producer spools under $HOME/.local/state when Redis is away.
RUN groupadd --gid 10001 app \
 && useradd --uid 10001 --gid app --create-home --shell /usr/sbin/nologin app
USER 10001:10001

# 8000: metrics-api; 9100: a worker's Prometheus metrics (METRICS_PORT).
EXPOSE 8000 9100
CMD ["metrics-worker", "run"]
