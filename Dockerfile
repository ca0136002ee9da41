# One image for api, worker, mock_platform and the one-shot provision/migrate steps.
FROM python:3.11-slim

WORKDIR /srv
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY alembic.ini pyproject.toml ./
COPY backend ./backend
COPY scripts ./scripts

ENV PYTHONPATH=/srv:/srv/backend \
    PYTHONUNBUFFERED=1
# The runtime never needs root, in the container or in the database.
RUN useradd --system --uid 10001 app
USER app
