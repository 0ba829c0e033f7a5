output "id" {
  description = "ID of the Key Vault."
  value       = azurerm_key_vault.this.id
}

output "name" {
  description = "Name of the Key Vault (the chart's SecretProviderClass reads from it)."
  value       = azurerm_key_vault.this.name
}

output "vault_uri" {
  description = "URI of the Key Vault."
  value       = azurerm_key_vault.this.vault_uri
}

output "secret_names" {
  description = "Names of the secrets held."
  value       = sort(keys(azurerm_key_vault_secret.this))
}
