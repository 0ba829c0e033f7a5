variable "subscription_id" {
  description = "Azure subscription; null: the ARM_SUBSCRIPTION_ID environment variable."
  type        = string
  default     = null

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id is a subscription GUID."
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
  default     = "10.40.0.0/16"
}

variable "nodes_prefix" {
  description = "Subnet of the AKS nodes."
  type        = string
  default     = "10.40.0.0/20"
}

variable "postgres_prefix" {
  description = "Subnet delegated to Postgres Flexible Server."
  type        = string
  default     = "10.40.16.0/24"
}

variable "endpoints_prefix" {
  description = "Subnet of the private endpoints."
  type        = string
  default     = "10.40.17.0/24"
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
  default     = false

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
  description = "AKS tier (Free: no uptime SLA)."
  type        = string
  default     = "Free"
}

variable "system_pool" {
  description = "System node pool."
  type = object({
    vm_size   = string
    min_count = number
    max_count = number
  })
  default = {
    vm_size   = "Standard_D2ds_v5"
    min_count = 1
    max_count = 2
  }
}

variable "user_pool" {
  description = "User node pool (trademesh, QuestDB, observability)."
  type = object({
    vm_size   = string
    min_count = number
    max_count = number
  })
  default = {
    vm_size   = "Standard_D4ds_v5"
    min_count = 1
    max_count = 3
  }
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

variable "kubelogin_login" {
  description = "How kubelogin gets the token terraform uses on the cluster: azurecli (a person), workloadidentity (CI with OIDC), spn or msi."
  type        = string
  default     = "azurecli"

  validation {
    condition     = contains(["azurecli", "workloadidentity", "spn", "msi"], var.kubelogin_login)
    error_message = "kubelogin_login is azurecli, workloadidentity, spn or msi."
  }
}

variable "monitoring" {
  description = "Azure Monitor (Container Insights, Defender) besides the in-cluster Prometheus stack."
  type        = bool
  default     = false
}

variable "event_hubs_namespace_name" {
  description = "Event Hubs namespace name (globally unique); null: trademesh-dev-events."
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
  default     = 1
}

variable "postgres_server_name" {
  description = "Flexible Server name (globally unique); null: trademesh-dev-pg."
  type        = string
  default     = null
}

variable "postgres_sku" {
  description = "Flexible Server compute SKU."
  type        = string
  default     = "B_Standard_B2s"
}

variable "postgres_storage_mb" {
  description = "Flexible Server storage in MB."
  type        = number
  default     = 32768
}

variable "postgres_high_availability" {
  description = "Zone-redundant standby."
  type        = bool
  default     = false
}

variable "postgres_backup_retention_days" {
  description = "Point-in-time restore window in days."
  type        = number
  default     = 7
}

variable "postgres_geo_redundant_backup" {
  description = "Backups also in the paired region."
  type        = bool
  default     = false
}

variable "key_vault_name" {
  description = "Key Vault name (globally unique, at most 24 characters); null: trademesh-dev-kv."
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
