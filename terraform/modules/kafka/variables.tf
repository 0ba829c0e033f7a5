variable "name" {
  description = "Prefix of every resource name, e.g. trademesh-prod."
  type        = string
}

variable "namespace_name" {
  description = "Event Hubs namespace name (globally unique, 6-50 characters); null: <name>-events."
  type        = string
  default     = null

  validation {
    condition     = var.namespace_name == null || can(regex("^[A-Za-z][A-Za-z0-9-]{4,48}[A-Za-z0-9]$", var.namespace_name))
    error_message = "namespace_name is 6-50 letters, digits or hyphens, starting with a letter."
  }
}

variable "location" {
  description = "Azure region."
  type        = string
}

variable "resource_group_name" {
  description = "Resource group of the namespace."
  type        = string
}

variable "sku" {
  description = "Standard (Kafka endpoint, at most 10 event hubs and 32 partitions each) or Premium (dedicated processing units, 100 event hubs, 200 partitions per unit)."
  type        = string
  default     = "Premium"

  validation {
    condition     = contains(["Standard", "Premium"], var.sku)
    error_message = "sku is Standard or Premium: Basic has no Kafka endpoint."
  }
}

variable "capacity" {
  description = "Throughput units (Standard, 1-40) or processing units (Premium: 1, 2, 4, 8 or 16)."
  type        = number
  default     = 1

  validation {
    condition     = var.sku == "Premium" ? contains([1, 2, 4, 8, 16], var.capacity) : var.capacity >= 1 && var.capacity <= 40
    error_message = "capacity is 1, 2, 4, 8 or 16 processing units (Premium) or 1-40 throughput units (Standard)."
  }
}

variable "maximum_throughput_units" {
  description = "Standard only: auto-inflate ceiling of throughput units."
  type        = number
  default     = 10
}

variable "topics" {
  description = "One event hub per Kafka topic: the events registry's topics and their DLQs (terraform/topics.json, generated from libs/events)."
  type = list(object({
    name         = string
    partitions   = number
    retention_ms = number
  }))

  validation {
    condition     = length(var.topics) == length(distinct([for t in var.topics : t.name]))
    error_message = "topic names must be unique."
  }

  validation {
    condition     = alltrue([for t in var.topics : can(regex("^[A-Za-z0-9]([A-Za-z0-9._-]{0,254}[A-Za-z0-9])?$", t.name))])
    error_message = "an event hub name is letters, digits, periods, hyphens and underscores, starting and ending with a letter or digit."
  }

  validation {
    condition     = alltrue([for t in var.topics : t.partitions >= 1 && t.partitions <= (var.sku == "Premium" ? 100 : 32)])
    error_message = "a topic has 1-32 partitions on Standard, 1-100 on Premium."
  }

  validation {
    condition     = length(var.topics) <= (var.sku == "Premium" ? 100 : 10)
    error_message = "Standard holds at most 10 event hubs per namespace (Premium 100): the registry's topics and DLQs need Premium."
  }

  validation {
    condition     = var.sku != "Premium" || sum(concat([0], [for t in var.topics : t.partitions])) <= 200 * var.capacity
    error_message = "Premium holds 200 partitions per processing unit: raise capacity."
  }

  validation {
    condition     = alltrue([for t in var.topics : t.retention_ms >= 3600000 && ceil(t.retention_ms / 86400000) <= (var.sku == "Premium" ? 90 : 7)])
    error_message = "retention is at least an hour and at most 7 days on Standard, 90 on Premium."
  }
}

variable "vnet_id" {
  description = "Virtual network linked to the private DNS zone of the endpoint."
  type        = string
}

variable "endpoints_subnet_id" {
  description = "Subnet of the namespace's private endpoint."
  type        = string
}

variable "tags" {
  description = "Tags of every resource."
  type        = map(string)
  default     = {}
}
