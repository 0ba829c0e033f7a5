variable "repo_root" {
  description = "Path of the repository root (the charts are installed from its charts/ folder)."
  type        = string
}

variable "environment" {
  description = "dev or prod: picks charts/trademesh/values-<environment>.yaml and the infra charts' prodValues."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment is dev or prod."
  }
}

variable "image_tag" {
  description = "Image tag of every service (ghcr.io/trademesh/<service>:<tag>); empty: the chart's appVersion."
  type        = string
  default     = ""
}

variable "services" {
  description = "The services (the umbrella chart's aliases, also their service account names)."
  type        = list(string)
}

variable "kafka_bootstrap" {
  description = "Event Hubs' Kafka endpoint, <namespace>.servicebus.windows.net:9093."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.servicebus\\.windows\\.net:9093$", var.kafka_bootstrap))
    error_message = "kafka_bootstrap is <namespace>.servicebus.windows.net:9093."
  }
}

variable "key_vault_name" {
  description = "The Key Vault the chart's SecretProviderClass reads."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant of the Key Vault."
  type        = string
}

variable "workload_identity_client_id" {
  description = "Client ID of the workload identity the services' service accounts are federated with."
  type        = string
}

variable "infra_releases" {
  description = "Releases of charts/infra/versions.yaml to install. Not redpanda, cloudnative-pg or postgres-cluster: Event Hubs and Postgres Flexible Server take their place."
  type        = list(string)
  default     = ["kube-prometheus-stack", "loki", "tempo", "alloy", "questdb"]

  validation {
    condition     = length(setintersection(toset(var.infra_releases), toset(["redpanda", "cloudnative-pg", "postgres-cluster"]))) == 0
    error_message = "redpanda, cloudnative-pg and postgres-cluster are replaced by Event Hubs and Postgres Flexible Server in Azure."
  }
}

variable "grafana_admin_password" {
  description = "Grafana's admin password (the grafana-admin Secret the prod values name)."
  type        = string
  sensitive   = true
}

variable "questdb_password" {
  description = "QuestDB's Postgres-wire password (the questdb-credentials Secret the prod values name)."
  type        = string
  sensitive   = true
}

variable "pod_cidr" {
  description = "The cluster's pod address range: the services believe the X-Forwarded-For of the gateway's and the ingress controller's pods in it (the chart's global.trustedProxies)."
  type        = string

  validation {
    condition     = can(cidrhost(var.pod_cidr, 0))
    error_message = "pod_cidr is a CIDR, e.g. 10.244.0.0/16."
  }
}

variable "public_url" {
  description = "The gateway's address as users reach it (https://...): notify puts it in the approve/reject links of pending approvals; empty: notifications carry no links (approvals are still decided through the API)."
  type        = string
  default     = ""
}
