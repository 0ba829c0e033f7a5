#!/usr/bin/env bash
# Compose's one-shot topic creation: every topic of the registry (trademesh_events.topics.TOPICS)
# and its dead-letter topic, with the partitions and retention embedded mode gives them
# (trademesh_infra.topics.topic_plan). tests/deploy/test_compose.py checks the list at the end
# against the registry and prints the lines to paste when a topic is added or changed.
# The registry asks for no compaction: every topic is cleanup.policy=delete, set explicitly.
# An existing topic keeps its partitions (Kafka never removes any); its configs are set again.
set -euo pipefail

brokers="${TRADEMESH_KAFKA_BROKERS:-redpanda:9092}"
replicas="${TRADEMESH_TOPIC_REPLICAS:-1}"

# topic NAME PARTITIONS RETENTION_MS CLEANUP_POLICY
topic() {
    local out
    if out=$(rpk topic create "$1" --partitions "$2" --replicas "$replicas" \
        --topic-config "retention.ms=$3" --topic-config "cleanup.policy=$4" \
        -X brokers="$brokers" 2>&1); then
        echo "$out"
    elif [[ $out == *TOPIC_ALREADY_EXISTS* ]]; then
        rpk topic alter-config "$1" --set "retention.ms=$3" --set "cleanup.policy=$4" \
            -X brokers="$brokers" >/dev/null
        echo "$1: exists; retention.ms=$3 cleanup.policy=$4 set"
    else
        echo "$out" >&2
        return 1
    fi
}

# >>> topics (checked against the registry by tests/deploy/test_compose.py)
topic md.ticks.v1 6 604800000 delete
topic md.ticks.v1.dlq 1 604800000 delete
topic md.bars.v1 6 604800000 delete
topic md.bars.v1.dlq 1 604800000 delete
topic orders.intents.v1 6 604800000 delete
topic orders.intents.v1.dlq 1 604800000 delete
topic orders.approved.v1 6 604800000 delete
topic orders.approved.v1.dlq 1 604800000 delete
topic orders.denied.v1 6 604800000 delete
topic orders.denied.v1.dlq 1 604800000 delete
topic orders.events.v1 6 604800000 delete
topic orders.events.v1.dlq 1 604800000 delete
topic orders.discrepancies.v1 3 604800000 delete
topic orders.discrepancies.v1.dlq 1 604800000 delete
topic bots.events.v1 3 604800000 delete
topic bots.events.v1.dlq 1 604800000 delete
topic auth.events.v1 3 604800000 delete
topic auth.events.v1.dlq 1 604800000 delete
# <<< topics
