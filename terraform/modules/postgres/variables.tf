variable "name" {
  description = "Prefix of every resource name, e.g. trademesh-prod."
  type        = string
}

variable "server_name" {
  description = "Flexible Server name (globally unique, 3-63 characters); null: <name>-pg."
  type        = string
  default     = null

  validation {
    condition     = var.server_name == null || can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.server_name))
    error_message = "server_name is 3-63 lowercase letters, digits or hyphens."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the server."
  type        = string
}

variable "postgres_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["14", "15", "16", "17"], var.postgres_version)
    error_message = "postgres_version is 14, 15, 16 or 17."
  }
}

variable "sku_name" {
  description = "Compute SKU, e.g. B_Standard_B2s (dev) or GP_Standard_D4ds_v5 (prod; HA needs General Purpose or Memory Optimized)."
  type        = string
  default     = "GP_Standard_D2ds_v5"

  validation {
    condition     = can(regex("^(B|GP|MO)_Standard_", var.sku_name))
    error_message = "sku_name starts with B_Standard_, GP_Standard_ or MO_Standard_."
  }
}

variable "storage_mb" {
  description = "Storage size in MB (grows automatically)."
  type        = number
  default     = 32768
}

variable "zone" {
  description = "Availability zone of the primary."
  type        = string
  default     = "1"
}

variable "high_availability" {
  description = "Zone-redundant standby with automatic failover (prod)."
  type        = bool
  default     = false
}

variable "standby_zone" {
  description = "Availability zone of the HA standby."
  type        = string
  default     = "2"
}

variable "backup_retention_days" {
  description = "Point-in-time restore window in days."
  type        = number
  default     = 7

  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "backup_retention_days is 7 to 35."
  }
}

variable "geo_redundant_backup" {
  description = "Backups also kept in the paired region (cannot be changed after creation)."
  type        = bool
  default     = false
}

variable "delegated_subnet_id" {
  description = "Subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers."
  type        = string
}

variable "vnet_id" {
  description = "Virtual network linked to the server's private DNS zone."
  type        = string
}

variable "administrator_login" {
  description = "Administrator user (the services connect as it; each owns its own schema)."
  type        = string
  default     = "trademesh"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{2,62}$", var.administrator_login)) && !contains(["admin", "administrator", "root", "azure_superuser", "azure_pg_admin", "guest", "public"], var.administrator_login)
    error_message = "administrator_login is a lowercase identifier and not a reserved name."
  }
}

variable "database" {
  description = "The application database."
  type        = string
  default     = "trademesh"
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
