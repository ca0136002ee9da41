# PostgreSQL from Debian's package, for machines without an image registry (build_local_images.sh).
# Behaves like the official postgres image as far as the compose file relies on it: port 5432,
# superuser `postgres` with the password from POSTGRES_PASSWORD (environment only), pg_isready.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
RUN mkdir -p "$PGDATA" /run/postgresql && chown -R postgres:postgres "$PGDATA" /run/postgresql
USER postgres
EXPOSE 5432
HEALTHCHECK --interval=2s --timeout=3s --retries=30 CMD pg_isready -h 127.0.0.1 -U postgres
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
