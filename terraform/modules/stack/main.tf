# trademesh on Azure: AKS, Event Hubs as the Kafka, Postgres Flexible Server, Key Vault, and the
# charts (observability, QuestDB, the umbrella chart) installed through Helm. One environment's
# wiring: envs/dev and envs/prod call it with their values; the providers stay in those roots.

data "azurerm_client_config" "current" {}

locals {
  environment = var.environment
  name        = "trademesh-${local.environment}"
  # path.root is the calling env (terraform/envs/<env>). Relative, so the chart paths in the state
  # are the same on every machine.
  repo_root = "${path.root}/../../.."
  # Generated from the events registry by terraform/topics.py (tests/deploy/test_terraform.py
  # fails when it is stale).
  topics = jsondecode(file("${path.root}/../../topics.json")).topics
  # One service account per service, named after it (the umbrella chart's aliases).
  services = sort([for f in fileset("${local.repo_root}/services", "*/pyproject.toml") : dirname(f)])
  tags     = merge(var.tags, { project = "trademesh", environment = local.environment })
  # The keystore's first master key; a rotation adds a key id and moves keystore-current to it.
  keystore_key_id = "tf-1"
}

resource "azurerm_resource_group" "this" {
  name     = "${local.name}-rg"
  location = var.location
  tags     = local.tags
}

module "network" {
  source              = "../network"
  name                = local.name
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  address_space       = var.address_space
  nodes_prefix        = var.nodes_prefix
  postgres_prefix     = var.postgres_prefix
  endpoints_prefix    = var.endpoints_prefix
  tags                = local.tags
}

module "cluster" {
  source                    = "../cluster"
  name                      = local.name
  location                  = var.location
  resource_group_name       = azurerm_resource_group.this.name
  tenant_id                 = data.azurerm_client_config.current.tenant_id
  kubernetes_version        = var.kubernetes_version
  sku_tier                  = var.aks_sku_tier
  nodes_subnet_id           = module.network.nodes_subnet_id
  zones                     = var.zones
  system_pool               = var.system_pool
  user_pool                 = var.user_pool
  private_cluster           = var.private_cluster
  authorized_ip_ranges      = var.operator_ip_ranges
  admin_group_object_ids    = var.admin_group_object_ids
  admin_object_ids          = concat([data.azurerm_client_config.current.object_id], var.cluster_admin_object_ids)
  monitoring                = var.monitoring
  workload_namespace        = "trademesh"
  workload_service_accounts = toset(local.services)
  tags                      = local.tags
}

module "kafka" {
  source              = "../kafka"
  name                = local.name
  namespace_name      = var.event_hubs_namespace_name
  location            = var.location
  resource_group_name = azurerm_resource_group.this.name
  sku                 = var.event_hubs_sku
  capacity            = var.event_hubs_capacity
  topics              = local.topics
  vnet_id             = module.network.vnet_id
  endpoints_subnet_id = module.network.endpoints_subnet_id
  tags                = local.tags
}

module "postgres" {
  source                = "../postgres"
  name                  = local.name
  server_name           = var.postgres_server_name
  location              = var.location
  resource_group_name   = azurerm_resource_group.this.name
  sku_name              = var.postgres_sku
  storage_mb            = var.postgres_storage_mb
  high_availability     = var.postgres_high_availability
  backup_retention_days = var.postgres_backup_retention_days
  geo_redundant_backup  = var.postgres_geo_redundant_backup
  delegated_subnet_id   = module.network.postgres_subnet_id
  vnet_id               = module.network.vnet_id
  tags                  = local.tags
}

resource "random_bytes" "keystore" {
  length = 32
}

# The HMAC key of the approve/reject links in notifications: notify signs, strategy checks.
resource "random_bytes" "approval_links" {
  length = 32
}

resource "random_password" "grafana_admin" {
  length  = 32
  special = false
}

resource "random_password" "questdb" {
  length  = 32
  special = false
}

module "keyvault" {
  source               = "../keyvault"
  name                 = local.name
  vault_name           = var.key_vault_name
  location             = var.location
  resource_group_name  = azurerm_resource_group.this.name
  tenant_id            = data.azurerm_client_config.current.tenant_id
  operator_ip_ranges   = var.operator_ip_ranges
  writer_object_ids    = [data.azurerm_client_config.current.object_id]
  reader_principal_ids = [module.cluster.workload_identity_principal_id]
  vnet_id              = module.network.vnet_id
  endpoints_subnet_id  = module.network.endpoints_subnet_id
  tags                 = local.tags

  secrets = {
    "database-url"            = module.postgres.database_url
    "kafka-connection-string" = module.kafka.connection_string
    "keystore-keys"           = jsonencode({ (local.keystore_key_id) = random_bytes.keystore.base64 })
    "keystore-current"        = local.keystore_key_id
    "approval-link-key"       = random_bytes.approval_links.base64
    # For operators: Grafana's and QuestDB's logins, which the cluster holds as Secrets too.
    "grafana-admin-password" = random_password.grafana_admin.result
    "questdb-password"       = random_password.questdb.result
  }
}

module "platform" {
  source                      = "../platform"
  repo_root                   = local.repo_root
  environment                 = local.environment
  image_tag                   = var.image_tag
  services                    = local.services
  kafka_bootstrap             = module.kafka.bootstrap
  key_vault_name              = module.keyvault.name
  tenant_id                   = data.azurerm_client_config.current.tenant_id
  workload_identity_client_id = module.cluster.workload_identity_client_id
  pod_cidr                    = module.cluster.pod_cidr
  infra_releases              = var.infra_releases
  grafana_admin_password      = random_password.grafana_admin.result
  questdb_password            = random_password.questdb.result
  public_url                  = var.public_url

  # The secrets must be in the vault before a pod mounts them.
  depends_on = [module.keyvault]
}
