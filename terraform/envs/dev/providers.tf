provider "azurerm" {
  subscription_id     = var.subscription_id
  storage_use_azuread = true
  features {}
}

# Local accounts are off: kubelogin turns the Entra ID login (Azure CLI on a laptop, workload
# identity in CI) into a token for the AKS server application.
locals {
  kubelogin = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "kubelogin"
    args        = ["get-token", "--login", var.kubelogin_login, "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630"]
  }
}

provider "helm" {
  kubernetes = {
    host                   = module.stack.host
    cluster_ca_certificate = base64decode(module.stack.cluster_ca_certificate)
    exec                   = local.kubelogin
  }
}

provider "kubernetes" {
  host                   = module.stack.host
  cluster_ca_certificate = base64decode(module.stack.cluster_ca_certificate)

  exec {
    api_version = local.kubelogin.api_version
    command     = local.kubelogin.command
    args        = local.kubelogin.args
  }
}
