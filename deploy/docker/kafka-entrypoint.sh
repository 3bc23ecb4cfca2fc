#!/bin/bash
# ucj-kafka's entrypoint: the image's server.properties, then every KAFKA_* variable as a
# property (the apache/kafka image's convention), format the storage once, exec the broker.
set -euo pipefail

conf=/opt/kafka/config
props=/tmp/server.properties
logs=/var/log/kafka
cp "$conf/server.properties" "$props"
echo "# from the environment" >> "$props"
while IFS='=' read -r name value; do
  case "$name" in
    KAFKA_HEAP_OPTS|KAFKA_OPTS|KAFKA_HOME|KAFKA_JVM_OPTS) continue ;;
    KAFKA_*) ;;
    *) continue ;;
  esac
  key=$(echo "${name#KAFKA_}" | tr '[:upper:]' '[:lower:]' \
        | sed -e 's/___/-/g' -e 's/__/@/g' -e 's/_/./g' -e 's/@/_/g')
  echo "$key=$value" >> "$props"  # a later line wins over the template's
done < <(env | grep '^KAFKA_' || true)

prop() { grep "^$1=" "$props" | tail -1 | cut -d= -f2-; }
data=$(prop log.dirs)
mkdir -p "$data"

# The health check's two signals: the broker's first listener port, and a fresh server log
# (it looks there for "Kafka Server started", written once the broker is registered).
prop listeners | tr ',' '\n' | head -1 | sed 's/.*://' > /tmp/kafka-port
rm -f "$logs"/kafka-server.log*

java=(java $KAFKA_HEAP_OPTS ${KAFKA_OPTS:-} -XX:+UseG1GC -XX:MaxGCPauseMillis=20
      -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
      "-Dlog4j2.configurationFile=$conf/log4j2.properties" "-Dkafka.logs.dir=$logs"
      -cp '/opt/kafka/libs/*')
if [ ! -f "$data/meta.properties" ]; then
  cid=${CLUSTER_ID:-}
  if [ -z "$cid" ]; then
    cid=$(java -Xmx128m -cp '/opt/kafka/libs/*' kafka.tools.StorageTool random-uuid | tail -1)
  fi
  java -Xmx128m -Dlog4j2.configurationFile="$conf/log4j2.properties" -Dkafka.logs.dir="$logs" \
    -cp '/opt/kafka/libs/*' kafka.tools.StorageTool format -t "$cid" -c "$props" \
    --ignore-formatted
fi
exec "${java[@]}" kafka.Kafka "$props"
