# No secret is an output: they are in Key Vault (module.keyvault), read by the pods through the
# Secrets Store CSI driver.

output "resource_group" {
  description = "The environment's resource group."
  value       = azurerm_resource_group.this.name
}

output "cluster_name" {
  description = "AKS cluster: az aks get-credentials -g <resource_group> -n <cluster_name>, then kubelogin convert-kubeconfig -l azurecli."
  value       = module.cluster.name
}

output "kafka_bootstrap" {
  description = "Event Hubs' Kafka endpoint (TRADEMESH_KAFKA_BOOTSTRAP)."
  value       = module.kafka.bootstrap
}

output "event_hubs" {
  description = "Event hub (topic) to partition count."
  value       = module.kafka.event_hubs
}

output "postgres_fqdn" {
  description = "Postgres Flexible Server's private host name."
  value       = module.postgres.fqdn
}

output "key_vault_name" {
  description = "The Key Vault holding the services' secrets."
  value       = module.keyvault.name
}

output "workload_identity_client_id" {
  description = "The workload identity the services' service accounts are federated with."
  value       = module.cluster.workload_identity_client_id
}

output "releases" {
  description = "Helm releases installed."
  value       = module.platform.releases
}

# For the env's helm and kubernetes providers (they stay in the root module).
output "host" {
  description = "The AKS API server URL."
  value       = module.cluster.host
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 CA certificate of the AKS API server."
  value       = module.cluster.cluster_ca_certificate
  sensitive   = true
}
