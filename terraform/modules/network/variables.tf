variable "name" {
  description = "Prefix of every resource name, e.g. trademesh-prod."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,30}$", var.name))
    error_message = "name must be 3-31 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group that holds the network."
  type        = string
}

variable "address_space" {
  description = "The virtual network's address space."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.address_space, 0))
    error_message = "address_space must be a CIDR block."
  }
}

variable "nodes_prefix" {
  description = "Subnet of the AKS nodes (Azure CNI Overlay: pods take addresses from the cluster's pod CIDR, not from here)."
  type        = string
  default     = "10.40.0.0/20"

  validation {
    condition     = can(cidrhost(var.nodes_prefix, 0))
    error_message = "nodes_prefix must be a CIDR block."
  }
}

variable "postgres_prefix" {
  description = "Subnet delegated to Postgres Flexible Server (private access)."
  type        = string
  default     = "10.40.16.0/24"

  validation {
    condition     = can(cidrhost(var.postgres_prefix, 0))
    error_message = "postgres_prefix must be a CIDR block."
  }
}

variable "endpoints_prefix" {
  description = "Subnet of the private endpoints (Event Hubs, Key Vault)."
  type        = string
  default     = "10.40.17.0/24"

  validation {
    condition     = can(cidrhost(var.endpoints_prefix, 0))
    error_message = "endpoints_prefix must be a CIDR block."
  }
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
