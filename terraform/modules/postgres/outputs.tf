output "fqdn" {
  description = "The server's private host name."
  value       = azurerm_postgresql_flexible_server.this.fqdn
}

output "database_url" {
  description = "TRADEMESH_DATABASE_URL of the services (TLS required). Goes to Key Vault, never to a plain output."
  value       = "postgresql://${var.administrator_login}:${random_password.admin.result}@${azurerm_postgresql_flexible_server.this.fqdn}:5432/${azurerm_postgresql_flexible_server_database.this.name}?sslmode=require"
  sensitive   = true
}
