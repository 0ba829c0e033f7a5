# Azure Event Hubs as the platform's Kafka: one namespace (Kafka endpoint on port 9093, SASL_SSL),
# one event hub per registry topic with its partition count, reachable only through a private
# endpoint in the VNet.

locals {
  namespace_name = coalesce(var.namespace_name, "${var.name}-events")
  topics         = { for t in var.topics : t.name => t }
}

resource "azurerm_eventhub_namespace" "this" {
  name                = local.namespace_name
  location            = var.location
  resource_group_name = var.resource_group_name
  sku                 = var.sku
  capacity            = var.capacity
  minimum_tls_version = "1.2"
  tags                = var.tags

  # Standard scales its throughput units with the load; Premium has fixed processing units.
  auto_inflate_enabled     = var.sku == "Standard"
  maximum_throughput_units = var.sku == "Standard" ? var.maximum_throughput_units : null

  # Kafka clients log in with SASL PLAIN and a shared access key (user "$ConnectionString").
  local_authentication_enabled  = true
  public_network_access_enabled = false

  network_rulesets {
    default_action                 = "Deny"
    public_network_access_enabled  = false
    trusted_service_access_enabled = false
  }
}

resource "azurerm_eventhub" "topic" {
  for_each          = local.topics
  name              = each.key
  namespace_id      = azurerm_eventhub_namespace.this.id
  partition_count   = each.value.partitions
  message_retention = ceil(each.value.retention_ms / 86400000)
}

# The services' key: send and listen (consumer groups need no more), never manage.
resource "azurerm_eventhub_namespace_authorization_rule" "app" {
  name                = "trademesh-app"
  namespace_name      = azurerm_eventhub_namespace.this.name
  resource_group_name = var.resource_group_name
  listen              = true
  send                = true
  manage              = false
}

resource "azurerm_private_dns_zone" "this" {
  name                = "privatelink.servicebus.windows.net"
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  name                  = "${var.name}-servicebus"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.this.name
  virtual_network_id    = var.vnet_id
  registration_enabled  = false
  tags                  = var.tags
}

resource "azurerm_private_endpoint" "this" {
  name                = "${local.namespace_name}-pe"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.endpoints_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "${local.namespace_name}-namespace"
    private_connection_resource_id = azurerm_eventhub_namespace.this.id
    subresource_names              = ["namespace"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "servicebus"
    private_dns_zone_ids = [azurerm_private_dns_zone.this.id]
  }
}
