# The stack's outputs (modules/stack/outputs.tf). No secret is an output: they are in Key Vault,
# read by the pods through the Secrets Store CSI driver.

output "resource_group" {
  description = "The environment's resource group."
  value       = module.stack.resource_group
}

output "cluster_name" {
  description = "AKS cluster: az aks get-credentials -g <resource_group> -n <cluster_name>, then kubelogin convert-kubeconfig -l azurecli."
  value       = module.stack.cluster_name
}

output "kafka_bootstrap" {
  description = "Event Hubs' Kafka endpoint (TRADEMESH_KAFKA_BOOTSTRAP)."
  value       = module.stack.kafka_bootstrap
}

output "event_hubs" {
  description = "Event hub (topic) to partition count."
  value       = module.stack.event_hubs
}

output "postgres_fqdn" {
  description = "Postgres Flexible Server's private host name."
  value       = module.stack.postgres_fqdn
}

output "key_vault_name" {
  description = "The Key Vault holding the services' secrets."
  value       = module.stack.key_vault_name
}

output "workload_identity_client_id" {
  description = "The workload identity the services' service accounts are federated with."
  value       = module.stack.workload_identity_client_id
}

output "releases" {
  description = "Helm releases installed."
  value       = module.stack.releases
}
