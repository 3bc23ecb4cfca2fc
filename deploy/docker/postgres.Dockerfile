# ucj-postgres: Debian bookworm's PostgreSQL (15) with the service databases created on first
# start (init-databases.sql). Built by `./ucj docker-images` (deploy/docker/images.py) from a
# context holding this file, postgres-entrypoint.sh and init-databases.sql.
#
# Like the postgres image: POSTGRES_USER (postgres), POSTGRES_PASSWORD (none: trust),
# PGDATA (/var/lib/postgresql/data, a volume), *.sql and *.sh in /docker-entrypoint-initdb.d
# run once on an empty data directory; arguments are passed to the server (`-c name=value`).
# POSTGRES_PORT (5432) and POSTGRES_LISTEN_ADDRESSES (*) for host networking.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# No "main" cluster at install time: the entrypoint makes one in PGDATA.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/ucj.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s "$(ls -d /usr/lib/postgresql/*/bin | tail -1)" /opt/pgbin \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql /docker-entrypoint-initdb.d \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data
ENV PATH=/opt/pgbin:$PATH \
    PGDATA=/var/lib/postgresql/data

COPY init-databases.sql /docker-entrypoint-initdb.d/10-init-databases.sql
COPY postgres-entrypoint.sh /usr/local/bin/ucj-postgres
RUN chmod 755 /usr/local/bin/ucj-postgres && chmod 644 /docker-entrypoint-initdb.d/*
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# Over TCP: the first start's init scripts run on a server without TCP, so this turns healthy
# only once the databases exist.
HEALTHCHECK --interval=3s --timeout=3s --start-period=10s --retries=30 \
    CMD ["sh", "-c", "pg_isready -q -h 127.0.0.1 -p \"${POSTGRES_PORT:-5432}\" -U \"${POSTGRES_USER:-postgres}\""]
ENTRYPOINT ["/usr/local/bin/ucj-postgres"]
