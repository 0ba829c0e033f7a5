output "id" {
  description = "ID of the AKS cluster."
  value       = azurerm_kubernetes_cluster.this.id
}

output "name" {
  description = "Name of the AKS cluster."
  value       = azurerm_kubernetes_cluster.this.name
}

output "host" {
  description = "API server URL (private when private_cluster)."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].host
  sensitive   = true
}

output "cluster_ca_certificate" {
  description = "Base64 CA certificate of the API server."
  value       = azurerm_kubernetes_cluster.this.kube_config[0].cluster_ca_certificate
  sensitive   = true
}

output "oidc_issuer_url" {
  description = "The cluster's OIDC issuer (workload identity)."
  value       = azurerm_kubernetes_cluster.this.oidc_issuer_url
}

output "workload_identity_client_id" {
  description = "Client ID of the workload identity (the chart's SecretProviderClass and service accounts use it)."
  value       = azurerm_user_assigned_identity.workload.client_id
}

output "workload_identity_principal_id" {
  description = "Principal (object) ID of the workload identity, for role assignments."
  value       = azurerm_user_assigned_identity.workload.principal_id
}

output "log_analytics_workspace_id" {
  description = "The Log Analytics workspace, or null without monitoring."
  value       = var.monitoring ? azurerm_log_analytics_workspace.this[0].id : null
}

output "pod_cidr" {
  description = "The pods' address range (Azure CNI Overlay): the gateway's and the ingress controller's pods connect from it."
  value       = var.pod_cidr
}
