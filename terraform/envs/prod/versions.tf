# Providers pinned to exact versions. No .terraform.lock.hcl is committed: it is made by
# `terraform init` against the registry, which the machines that build this repository cannot
# reach. The exact pins give every init the same provider releases; to add hash checking, run
# `terraform providers lock -platform=linux_amd64 -platform=darwin_arm64` where the registry is
# reachable and commit the lock file next to this one (bump pins and lock together).
terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "= 4.55.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "= 3.0.2"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "= 2.38.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "= 3.7.2"
    }
  }
}
