# ucj-kafka: a single-node Apache Kafka broker (KRaft: broker + controller in one process) from
# the jars the project fetches with Maven (deploy/kafka/pom.xml, `python -m deploy.local.stack
# jars`) on Debian's Java 17 runtime. Built by `./ucj docker-images` (deploy/docker/images.py)
# from a context it assembles: libs/ (the jars), server.properties, log4j2.properties and the
# two scripts next to this file.
#
# Configuration as with the apache/kafka image: KAFKA_LISTENERS=... sets `listeners`, and so on
# for every KAFKA_* variable (`_` -> `.`, `__` -> `_`, `___` -> `-`); CLUSTER_ID formats the
# storage (else a random one, once); KAFKA_HEAP_OPTS sets the heap.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/*

COPY libs/ /opt/kafka/libs/
COPY server.properties log4j2.properties /opt/kafka/config/
COPY kafka-entrypoint.sh /opt/kafka/bin/ucj-kafka
COPY kafka-healthcheck.sh /opt/kafka/bin/ucj-kafka-healthcheck
# The project's broker settings (deploy/kafka/server.properties) with the container's ports and
# data directory; clients reach PLAINTEXT on every address of the container.
RUN sed -i -e 's/@PORT@/9092/g' -e 's/@CONTROLLER_PORT@/9093/g' \
        -e 's#@LOG_DIRS@#/var/lib/kafka/data#g' /opt/kafka/config/server.properties \
    && chmod 755 /opt/kafka/bin/* \
    && useradd --system --uid 10002 --user-group --home-dir /opt/kafka --shell /usr/sbin/nologin kafka \
    && mkdir -p /var/lib/kafka/data /var/log/kafka \
    && chown -R kafka:kafka /var/lib/kafka /var/log/kafka
USER kafka

ENV KAFKA_LISTENERS=PLAINTEXT://:9092,CONTROLLER://127.0.0.1:9093 \
    KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://localhost:9092 \
    KAFKA_HEAP_OPTS="-Xms512m -Xmx1g"
VOLUME /var/lib/kafka/data
EXPOSE 9092
HEALTHCHECK --interval=5s --timeout=5s --start-period=20s --retries=24 \
    CMD ["/opt/kafka/bin/ucj-kafka-healthcheck"]
ENTRYPOINT ["/opt/kafka/bin/ucj-kafka"]
