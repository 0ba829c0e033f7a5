variable "name" {
  description = "Prefix of every resource name, e.g. trademesh-prod."
  type        = string
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the cluster."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant of the cluster's Kubernetes RBAC."
  type        = string
}

variable "kubernetes_version" {
  description = "Kubernetes minor version (e.g. 1.33); null: AKS's default."
  type        = string
  default     = null

  validation {
    condition     = var.kubernetes_version == null || can(regex("^1\\.[0-9]{2}$", var.kubernetes_version))
    error_message = "kubernetes_version is a minor version such as 1.33 (patches follow the upgrade channel)."
  }
}

variable "sku_tier" {
  description = "AKS tier: Standard carries the uptime SLA (prod); Free does not."
  type        = string
  default     = "Standard"

  validation {
    condition     = contains(["Free", "Standard", "Premium"], var.sku_tier)
    error_message = "sku_tier is Free, Standard or Premium."
  }
}

variable "nodes_subnet_id" {
  description = "Subnet of the node pools."
  type        = string
}

variable "zones" {
  description = "Availability zones of the node pools; empty in regions without zones."
  type        = list(string)
  default     = ["1", "2", "3"]
}

variable "system_pool" {
  description = "The system node pool (CriticalAddonsOnly: cluster add-ons only)."
  type = object({
    vm_size   = string
    min_count = number
    max_count = number
  })
  default = {
    vm_size   = "Standard_D2ds_v5"
    min_count = 2
    max_count = 3
  }

  validation {
    condition     = var.system_pool.min_count >= 1 && var.system_pool.max_count >= var.system_pool.min_count
    error_message = "system_pool needs min_count >= 1 and max_count >= min_count."
  }
}

variable "user_pool" {
  description = "The user node pool running trademesh and the observability stack."
  type = object({
    vm_size   = string
    min_count = number
    max_count = number
  })
  default = {
    vm_size   = "Standard_D4ds_v5"
    min_count = 2
    max_count = 6
  }

  validation {
    condition     = var.user_pool.min_count >= 1 && var.user_pool.max_count >= var.user_pool.min_count
    error_message = "user_pool needs min_count >= 1 and max_count >= min_count."
  }
}

variable "network_policy" {
  description = "NetworkPolicy engine: cilium (Azure CNI powered by Cilium) or calico."
  type        = string
  default     = "cilium"

  validation {
    condition     = contains(["cilium", "calico"], var.network_policy)
    error_message = "network_policy is cilium or calico."
  }
}

variable "pod_cidr" {
  description = "Pod address range of Azure CNI Overlay (not routed in the VNet)."
  type        = string
  default     = "10.244.0.0/16"
}

variable "service_cidr" {
  description = "Kubernetes service address range; must not overlap the VNet."
  type        = string
  default     = "10.41.0.0/16"
}

variable "dns_service_ip" {
  description = "Cluster DNS address, inside service_cidr."
  type        = string
  default     = "10.41.0.10"
}

variable "private_cluster" {
  description = "API server on a private address only (terraform and kubectl then run from inside the VNet)."
  type        = bool
  default     = true
}

variable "authorized_ip_ranges" {
  description = "CIDRs allowed to reach a public API server (ignored for a private cluster)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.authorized_ip_ranges : can(cidrhost(cidr, 0))])
    error_message = "authorized_ip_ranges holds CIDR blocks."
  }
}

variable "admin_group_object_ids" {
  description = "Entra ID groups that administer the cluster."
  type        = list(string)
  default     = []
}

variable "admin_object_ids" {
  description = "Principals (users, groups, the deployment's service principal) given Azure Kubernetes Service RBAC Cluster Admin; terraform's own principal must be one to install the charts."
  type        = list(string)
}

variable "monitoring" {
  description = "Azure Monitor: Container Insights and Defender into a Log Analytics workspace made here."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the Log Analytics workspace (monitoring = true)."
  type        = number
  default     = 30

  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days is 30 to 730."
  }
}

variable "workload_namespace" {
  description = "Namespace of the workloads that use the workload identity."
  type        = string
  default     = "trademesh"
}

variable "workload_service_accounts" {
  description = "Service accounts (in workload_namespace) federated with the workload identity: one per service."
  type        = set(string)

  validation {
    condition     = length(var.workload_service_accounts) > 0 && length(var.workload_service_accounts) <= 20
    error_message = "workload_service_accounts holds 1 to 20 names (Entra ID's limit of federated credentials per identity)."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
