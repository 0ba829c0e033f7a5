"""The `trademesh` command: infra up/down/status, events tail, AsyncAPI and JSON Schema export, up (infra and every service)."""
