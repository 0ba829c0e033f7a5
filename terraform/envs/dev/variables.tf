# Only what has no safe default: the subscription, who may reach the API server and the vault,
# who administers the cluster, globally unique names, the image tag. The rest is set in main.tf.

variable "subscription_id" {
  description = "Azure subscription; null: the ARM_SUBSCRIPTION_ID environment variable."
  type        = string
  default     = null

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$", var.subscription_id))
    error_message = "subscription_id is a subscription GUID."
  }
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

variable "event_hubs_namespace_name" {
  description = "Event Hubs namespace name (globally unique); null: trademesh-dev-events."
  type        = string
  default     = null
}

variable "postgres_server_name" {
  description = "Flexible Server name (globally unique); null: trademesh-dev-pg."
  type        = string
  default     = null
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

variable "public_url" {
  description = "The gateway's address as users reach it (https://...): notify puts it in the approve/reject links of pending approvals; empty: notifications carry no links (approvals are still decided through the API)."
  type        = string
  default     = ""

  validation {
    condition     = var.public_url == "" || can(regex("^https?://[^/?#]+$", var.public_url))
    error_message = "public_url is a scheme and a host (and port), without a path: https://trade.example.org."
  }
}
