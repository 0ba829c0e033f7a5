output "namespace_name" {
  description = "Name of the Event Hubs namespace."
  value       = azurerm_eventhub_namespace.this.name
}

output "bootstrap" {
  description = "Kafka bootstrap server: the namespace's Kafka endpoint."
  value       = "${azurerm_eventhub_namespace.this.name}.servicebus.windows.net:9093"
}

output "event_hubs" {
  description = "Event hub (topic) name to partition count."
  value       = { for name, hub in azurerm_eventhub.topic : name => hub.partition_count }
}

output "connection_string" {
  description = "The services' SASL password (send and listen). Goes to Key Vault, never to a plain output."
  value       = azurerm_eventhub_namespace_authorization_rule.app.primary_connection_string
  sensitive   = true
}
