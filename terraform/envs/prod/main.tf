# trademesh prod on Azure: the stack (modules/stack) with prod's values. The providers are in
# providers.tf; the variables (variables.tf) are what has no safe default.
# Prod: a private API server, the Standard AKS tier (uptime SLA), zone-redundant Postgres HA
# with geo-redundant backups. checkov's skips in modules/cluster and modules/postgres rely on
# these values (tests/deploy/test_terraform.py checks them).

module "stack" {
  source = "../../modules/stack"

  environment      = "prod"
  address_space    = "10.50.0.0/16"
  nodes_prefix     = "10.50.0.0/20"
  postgres_prefix  = "10.50.16.0/24"
  endpoints_prefix = "10.50.17.0/24"

  private_cluster = true
  aks_sku_tier    = "Standard"
  monitoring      = true
  system_pool = {
    vm_size   = "Standard_D2ds_v5"
    min_count = 2
    max_count = 3
  }
  user_pool = {
    vm_size   = "Standard_D8ds_v5"
    min_count = 3
    max_count = 9
  }

  event_hubs_capacity            = 2
  postgres_sku                   = "GP_Standard_D4ds_v5"
  postgres_storage_mb            = 131072
  postgres_high_availability     = true
  postgres_backup_retention_days = 35
  postgres_geo_redundant_backup  = true

  operator_ip_ranges        = var.operator_ip_ranges
  admin_group_object_ids    = var.admin_group_object_ids
  cluster_admin_object_ids  = var.cluster_admin_object_ids
  event_hubs_namespace_name = var.event_hubs_namespace_name
  postgres_server_name      = var.postgres_server_name
  key_vault_name            = var.key_vault_name
  image_tag                 = var.image_tag
  public_url                = var.public_url
}
