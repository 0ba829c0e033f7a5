variable "environment" {
  description = "dev or prod: names (trademesh-<environment>-*), tags and the umbrella chart's values-<environment>.yaml."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment is dev or prod."
  }
}

variable "location" {
  description = "Azure region (with availability zones, Event Hubs Premium and Flexible Server HA)."
  type        = string
  default     = "westeurope"
}

variable "zones" {
  description = "Availability zones of the node pools."
  type        = list(string)
  default     = ["1", "2", "3"]
}

variable "address_space" {
  description = "The virtual network's address space."
  type        = string
}

variable "nodes_prefix" {
  description = "Subnet of the AKS nodes."
  type        = string
}

variable "postgres_prefix" {
  description = "Subnet delegated to Postgres Flexible Server."
  type        = string
}

variable "endpoints_prefix" {
  description = "Subnet of the private endpoints."
  type        = string
}

variable "operator_ip_ranges" {
  description = "Egress CIDRs of whoever runs terraform or kubectl from outside the VNet: allowed to the API server (public clusters) and to Key Vault."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.operator_ip_ranges : can(cidrhost(cidr, 0)) && cidr != "0.0.0.0/0"])
    error_message = "operator_ip_ranges holds CIDR blocks, and not 0.0.0.0/0."
  }
}

variable "private_cluster" {
  description = "Private API server (terraform then runs inside the VNet). A public one needs operator_ip_ranges."
  type        = bool

  validation {
    condition     = var.private_cluster || length(var.operator_ip_ranges) > 0
    error_message = "A public API server must be limited to operator_ip_ranges: list your egress CIDRs, or set private_cluster = true."
  }
}

variable "kubernetes_version" {
  description = "Kubernetes minor version; null: AKS's default."
  type        = string
  default     = null
}

variable "aks_sku_tier" {
  description = "AKS tier (Standard: the uptime SLA; Free: none)."
  type        = string
}

variable "system_pool" {
  description = "System node pool."
  type = object({
    vm_size   = string
    min_count = number
    max_count = number
  })
}

variable "user_pool" {
  description = "User node pool (trademesh, QuestDB, observability)."
  type = object({
    vm_size   = string
    min_count = number
    max_count = number
  })
}

variable "admin_group_object_ids" {
  description = "Entra ID groups that administer the cluster."
  type        = list(string)
  default     = []
}

variable "cluster_admin_object_ids" {
  description = "More principals given cluster admin (terraform's own principal always is)."
  type        = list(string)
  default     = []
}

variable "monitoring" {
  description = "Azure Monitor (Container Insights, Defender) besides the in-cluster Prometheus stack."
  type        = bool
}

variable "event_hubs_namespace_name" {
  description = "Event Hubs namespace name (globally unique); null: trademesh-<environment>-events."
  type        = string
  default     = null
}

variable "event_hubs_sku" {
  description = "Event Hubs tier. Premium: the registry's topics and DLQs are more event hubs than Standard's 10 per namespace."
  type        = string
  default     = "Premium"
}

variable "event_hubs_capacity" {
  description = "Event Hubs processing units (Premium) or throughput units (Standard)."
  type        = number
}

variable "postgres_server_name" {
  description = "Flexible Server name (globally unique); null: trademesh-<environment>-pg."
  type        = string
  default     = null
}

variable "postgres_sku" {
  description = "Flexible Server compute SKU (HA needs General Purpose or Memory Optimized)."
  type        = string
}

variable "postgres_storage_mb" {
  description = "Flexible Server storage in MB."
  type        = number
}

variable "postgres_high_availability" {
  description = "Zone-redundant standby."
  type        = bool
}

variable "postgres_backup_retention_days" {
  description = "Point-in-time restore window in days."
  type        = number
}

variable "postgres_geo_redundant_backup" {
  description = "Backups also in the paired region."
  type        = bool
}

variable "key_vault_name" {
  description = "Key Vault name (globally unique, at most 24 characters); null: trademesh-<environment>-kv."
  type        = string
  default     = null
}

variable "image_tag" {
  description = "Image tag of the services; empty: the umbrella chart's appVersion."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) || var.image_tag == ""
    error_message = "image_tag is a Docker tag."
  }
}

variable "infra_releases" {
  description = "Releases of charts/infra/versions.yaml to install in the cluster."
  type        = list(string)
  default     = ["kube-prometheus-stack", "loki", "tempo", "alloy", "questdb"]
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "public_url" {
  description = "The gateway's address as users reach it (https://...): notify puts it in the approve/reject links of pending approvals; empty: notifications carry no links (approvals are still decided through the API)."
  type        = string
  default     = ""

  validation {
    condition     = var.public_url == "" || can(regex("^https?://[^/?#]+$", var.public_url))
    error_message = "public_url is a scheme and a host (and port), without a path: https://trade.example.org."
  }
}
