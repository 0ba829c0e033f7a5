output "vnet_id" {
  description = "ID of the virtual network (private DNS zones link to it)."
  value       = azurerm_virtual_network.this.id
}

output "nodes_subnet_id" {
  description = "Subnet of the AKS node pools."
  value       = azurerm_subnet.nodes.id
}

output "postgres_subnet_id" {
  description = "Subnet delegated to Postgres Flexible Server."
  value       = azurerm_subnet.postgres.id
}

output "endpoints_subnet_id" {
  description = "Subnet of the private endpoints."
  value       = azurerm_subnet.endpoints.id
}
