# trademesh dev on Azure: the stack (modules/stack) with dev's values. The providers are in
# providers.tf; the variables (variables.tf) are what has no safe default.
# Dev: a public API server limited to operator_ip_ranges, the Free AKS tier, small pools,
# Burstable Postgres without HA and with zone-local backups.

module "stack" {
  source = "../../modules/stack"

  environment      = "dev"
  address_space    = "10.40.0.0/16"
  nodes_prefix     = "10.40.0.0/20"
  postgres_prefix  = "10.40.16.0/24"
  endpoints_prefix = "10.40.17.0/24"

  private_cluster = false
  aks_sku_tier    = "Free"
  monitoring      = false
  system_pool = {
    vm_size   = "Standard_D2ds_v5"
    min_count = 1
    max_count = 2
  }
  user_pool = {
    vm_size   = "Standard_D4ds_v5"
    min_count = 1
    max_count = 3
  }

  event_hubs_capacity            = 1
  postgres_sku                   = "B_Standard_B2s"
  postgres_storage_mb            = 32768
  postgres_high_availability     = false
  postgres_backup_retention_days = 7
  postgres_geo_redundant_backup  = false

  operator_ip_ranges        = var.operator_ip_ranges
  admin_group_object_ids    = var.admin_group_object_ids
  cluster_admin_object_ids  = var.cluster_admin_object_ids
  event_hubs_namespace_name = var.event_hubs_namespace_name
  postgres_server_name      = var.postgres_server_name
  key_vault_name            = var.key_vault_name
  image_tag                 = var.image_tag
  public_url                = var.public_url
}
