# One image for api, worker, mock_platform and the one-shot provision/migrate steps.
# PYTHON_BASE_IMAGE defaults to the registry's python:3.11-slim; a machine without a registry passes
# one built by scripts/compose/build_local_images.sh. With a wheelhouse in the build context
# (.wheelhouse/, built on the host by scripts/compose/images.py), the lock installs without the
# network; without one, from the package index as usual.
# Layer order is for the build cache: every step after the dependency layer copies the whole image
# on storage drivers without copy-on-write (vfs), so the sources come last, in few steps.
ARG PYTHON_BASE_IMAGE=python:3.11-slim
FROM ${PYTHON_BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The runtime never needs root, in the container or in the database.
RUN useradd --system --uid 10001 app
WORKDIR /srv
# The glob keeps the build valid without a .wheelhouse: requirements.lock always matches.
COPY requirements.lock pyproject.toml .wheelhouse* /tmp/install/
# The pinned lock, then the project as an editable install (its .pth names /srv and /srv/backend,
# whose sources the COPY steps below bring), built by the project's own hatchling. The empty
# packages stand in for the sources so that hatchling finds the three import roots.
RUN set -e; \
    mkdir -p backend/app backend/mock_platform scripts; \
    touch backend/app/__init__.py backend/mock_platform/__init__.py scripts/__init__.py; \
    cp /tmp/install/pyproject.toml .; \
    if ls /tmp/install/*.whl >/dev/null 2>&1; then offline="--no-index --find-links /tmp/install"; else offline=""; fi; \
    pip install --no-cache-dir $offline -r /tmp/install/requirements.lock; \
    pip install --no-cache-dir $offline --no-deps -e .; \
    rm -rf /tmp/install
USER app
COPY alembic.ini ./
COPY backend ./backend
COPY scripts ./scripts
