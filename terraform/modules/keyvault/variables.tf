variable "name" {
  description = "Prefix of every resource name, e.g. trademesh-prod."
  type        = string
}

variable "vault_name" {
  description = "Key Vault name (globally unique, 3-24 characters); null: <name>-kv."
  type        = string
  default     = null

  validation {
    condition     = var.vault_name == null || can(regex("^[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$", var.vault_name))
    error_message = "vault_name is 3-24 letters, digits or hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the vault."
  type        = string
}

variable "tenant_id" {
  description = "Entra ID tenant of the vault."
  type        = string
}

variable "soft_delete_retention_days" {
  description = "Days a deleted secret or vault stays recoverable."
  type        = number
  default     = 90

  validation {
    condition     = var.soft_delete_retention_days >= 7 && var.soft_delete_retention_days <= 90
    error_message = "soft_delete_retention_days is 7 to 90."
  }
}

variable "operator_ip_ranges" {
  description = "CIDRs (the deploying runner's egress) allowed to the vault's public endpoint; empty: private endpoint only, so terraform must run inside the VNet."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for cidr in var.operator_ip_ranges : can(cidrhost(cidr, 0))])
    error_message = "operator_ip_ranges holds CIDR blocks."
  }
}

variable "writer_object_ids" {
  description = "Principals that write the secrets (terraform's own principal): Key Vault Secrets Officer."
  type        = list(string)
}

variable "reader_principal_ids" {
  description = "Principals that read the secrets (the workload identity): Key Vault Secrets User."
  type        = list(string)
}

variable "secrets" {
  description = "Secret name to value: what the services read through the Secrets Store CSI driver."
  type        = map(string)
  sensitive   = true
}

variable "vnet_id" {
  description = "Virtual network linked to the private DNS zone of the endpoint."
  type        = string
}

variable "endpoints_subnet_id" {
  description = "Subnet of the vault's private endpoint."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
