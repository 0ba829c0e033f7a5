# Key Vault: the services' secrets (database URL, Kafka connection string, keystore keys), RBAC
# only, purge protection, a private endpoint for the cluster, and reads granted to the
# workload identity alone.

locals {
  vault_name = coalesce(var.vault_name, "${var.name}-kv")
}

resource "azurerm_key_vault" "this" {
  #checkov:skip=CKV_AZURE_189:the public endpoint opens only when operator_ip_ranges lists a deploying runner's egress, and then only to those addresses (ACL default Deny); otherwise access is by the private endpoint alone
  name                          = local.vault_name
  location                      = var.location
  resource_group_name           = var.resource_group_name
  tenant_id                     = var.tenant_id
  sku_name                      = "standard"
  rbac_authorization_enabled    = true
  purge_protection_enabled      = true
  soft_delete_retention_days    = var.soft_delete_retention_days
  public_network_access_enabled = length(var.operator_ip_ranges) > 0
  tags                          = var.tags

  network_acls {
    bypass         = "None"
    default_action = "Deny"
    ip_rules       = var.operator_ip_ranges
  }
}

resource "azurerm_role_assignment" "writer" {
  for_each             = toset(var.writer_object_ids)
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = each.value
}

# count, not for_each: a reader made in the same apply has no principal ID at plan time.
resource "azurerm_role_assignment" "reader" {
  count                = length(var.reader_principal_ids)
  scope                = azurerm_key_vault.this.id
  role_definition_name = "Key Vault Secrets User"
  principal_id         = var.reader_principal_ids[count.index]
}

resource "azurerm_private_dns_zone" "this" {
  name                = "privatelink.vaultcore.azure.net"
  resource_group_name = var.resource_group_name
  tags                = var.tags
}

resource "azurerm_private_dns_zone_virtual_network_link" "this" {
  name                  = "${var.name}-vault"
  resource_group_name   = var.resource_group_name
  private_dns_zone_name = azurerm_private_dns_zone.this.name
  virtual_network_id    = var.vnet_id
  registration_enabled  = false
  tags                  = var.tags
}

resource "azurerm_private_endpoint" "this" {
  name                = "${local.vault_name}-pe"
  location            = var.location
  resource_group_name = var.resource_group_name
  subnet_id           = var.endpoints_subnet_id
  tags                = var.tags

  private_service_connection {
    name                           = "${local.vault_name}-vault"
    private_connection_resource_id = azurerm_key_vault.this.id
    subresource_names              = ["vault"]
    is_manual_connection           = false
  }

  private_dns_zone_group {
    name                 = "vault"
    private_dns_zone_ids = [azurerm_private_dns_zone.this.id]
  }
}

resource "azurerm_key_vault_secret" "this" {
  #checkov:skip=CKV_AZURE_41:machine credentials rotated by terraform (new key, new password), not by a date; an expiry would stop the services when it passes without rotating anything
  # The names are not secret; only the values are.
  for_each     = nonsensitive(toset(keys(var.secrets)))
  name         = each.key
  value        = var.secrets[each.key]
  key_vault_id = azurerm_key_vault.this.id
  content_type = "text/plain"

  depends_on = [azurerm_role_assignment.writer, azurerm_private_endpoint.this]
}
