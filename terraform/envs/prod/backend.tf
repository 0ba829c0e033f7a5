# State in an Azure Storage blob (leases lock it). Its coordinates are not committed: write them
# to backend.hcl (git-ignored) and run `terraform init -backend-config=backend.hcl`:
#   resource_group_name  = "<state resource group>"
#   storage_account_name = "<state storage account>"
#   container_name       = "tfstate"
#   key                  = "trademesh-prod.tfstate"
# The state holds secrets (the Postgres password, the Event Hubs key, the keystore key): keep that
# storage account private, encrypted and readable by the deployers alone.
terraform {
  backend "azurerm" {
    use_azuread_auth = true
  }
}
