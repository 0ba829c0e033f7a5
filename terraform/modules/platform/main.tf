# What runs in the cluster: the namespaces, the upstream infrastructure charts pinned in
# charts/infra/versions.yaml (observability and QuestDB; never Redpanda or in-cluster Postgres,
# which Event Hubs and Flexible Server replace) and the umbrella chart charts/trademesh wired to
# Event Hubs and to Key Vault.

locals {
  charts   = "${var.repo_root}/charts"
  versions = yamldecode(file("${local.charts}/infra/versions.yaml"))
  repos    = { for r in local.versions.repositories : r.name => r.url }
  prod     = var.environment == "prod"

  releases = {
    for r in local.versions.releases : r.name => merge(r, {
      files = concat(r.values, local.prod ? try(r.prodValues, []) : [])
    }) if contains(var.infra_releases, r.name)
  }
  # helm_release instances of one resource cannot depend on each other, so releases go in
  # waves: those that need nothing, those that need only the first wave, then the rest.
  wave1 = { for k, r in local.releases : k => r if length(r.dependsOn) == 0 }
  wave2 = { for k, r in local.releases : k => r if !contains(keys(local.wave1), k) && alltrue([for d in r.dependsOn : contains(keys(local.wave1), d)]) }
  wave3 = { for k, r in local.releases : k => r if !contains(keys(local.wave1), k) && !contains(keys(local.wave2), k) }

  namespaces = toset(concat(["trademesh"], distinct([for r in local.releases : r.namespace])))

  # Kubernetes Secret and key that each Key Vault secret is synced into (Secrets Store CSI driver).
  vault_secrets = [
    { object = "database-url", secret = "trademesh-database", key = "url" },              # pragma: allowlist secret
    { object = "kafka-connection-string", secret = "trademesh-kafka", key = "password" }, # pragma: allowlist secret
    { object = "keystore-keys", secret = "trademesh-keystore", key = "keys" },            # pragma: allowlist secret
    { object = "keystore-current", secret = "trademesh-keystore", key = "current" },      # pragma: allowlist secret
    { object = "approval-link-key", secret = "trademesh-approval-links", key = "key" },   # pragma: allowlist secret
  ]

  trademesh_values = {
    global = {
      image = { tag = var.image_tag }
      secretEnv = [
        { name = "TRADEMESH_DATABASE_URL", secret = "trademesh-database", key = "url" },          # pragma: allowlist secret
        { name = "TRADEMESH_KAFKA_SASL_PASSWORD", secret = "trademesh-kafka", key = "password" }, # pragma: allowlist secret
      ]
      # Event Hubs' certificates chain to a public CA: no CA bundle of ours (values-prod.yaml
      # mounts Redpanda's).
      kafkaCA = { secret = "" }
      # The pods whose X-Forwarded-For the services believe: the gateway's (auth's login
      # throttling counts the client it names) and the ingress controller's.
      trustedProxies = [var.pod_cidr]
      azureKeyVault = {
        enabled  = true
        name     = var.key_vault_name
        tenantId = var.tenant_id
        clientId = var.workload_identity_client_id
        secrets  = local.vault_secrets
      }
    }
    # Key Vault is the secret store here: the chart's dev Secrets stay off in every environment.
    devSecrets = { enabled = false }
  }
  service_account_values = {
    for s in var.services : s => {
      serviceAccount = { annotations = { "azure.workload.identity/client-id" = var.workload_identity_client_id } }
    }
  }
  # Notify's approval links point at the gateway as users reach it, when there is such an address.
  public_url_values = {
    for s in(var.public_url == "" ? [] : ["notify"]) : s => { env = { TRADEMESH_PUBLIC_URL = var.public_url } }
  }
}

resource "kubernetes_namespace_v1" "this" {
  for_each = local.namespaces

  metadata {
    name   = each.key
    labels = { "app.kubernetes.io/part-of" = "trademesh" }
  }
}

# Cluster-local logins that the prod values of the infra charts and of market-data read from
# existing Secrets (dev values use the charts' own defaults).
resource "kubernetes_secret_v1" "grafana_admin" {
  count = local.prod && contains(keys(local.releases), "kube-prometheus-stack") ? 1 : 0

  metadata {
    name      = "grafana-admin"
    namespace = kubernetes_namespace_v1.this[local.releases["kube-prometheus-stack"].namespace].metadata[0].name
  }

  data = {
    admin-user     = "admin"
    admin-password = var.grafana_admin_password
  }
}

resource "kubernetes_secret_v1" "questdb_credentials" {
  count = local.prod && contains(keys(local.releases), "questdb") ? 1 : 0

  metadata {
    name      = "questdb-credentials"
    namespace = kubernetes_namespace_v1.this[local.releases["questdb"].namespace].metadata[0].name
  }

  data = {
    pg-user     = "trademesh"
    pg-password = var.questdb_password
  }
}

resource "kubernetes_secret_v1" "trademesh_questdb" {
  count = local.prod && contains(keys(local.releases), "questdb") ? 1 : 0

  metadata {
    name      = "trademesh-questdb"
    namespace = kubernetes_namespace_v1.this["trademesh"].metadata[0].name
  }

  data = {
    ilp = "http::addr=questdb.${local.releases["questdb"].namespace}.svc.cluster.local:9000;"
    pg  = "postgresql://trademesh:${var.questdb_password}@questdb.${local.releases["questdb"].namespace}.svc.cluster.local:8812/qdb"
  }
}

resource "helm_release" "wave1" {
  for_each   = local.wave1
  name       = each.key
  repository = local.repos[each.value.repo]
  chart      = each.value.chart
  version    = each.value.version
  namespace  = kubernetes_namespace_v1.this[each.value.namespace].metadata[0].name
  values     = [for f in each.value.files : file("${local.charts}/infra/${f}")]
  atomic     = true
  timeout    = 900

  depends_on = [kubernetes_secret_v1.grafana_admin, kubernetes_secret_v1.questdb_credentials]
}

resource "helm_release" "wave2" {
  for_each   = local.wave2
  name       = each.key
  repository = local.repos[each.value.repo]
  chart      = each.value.chart
  version    = each.value.version
  namespace  = kubernetes_namespace_v1.this[each.value.namespace].metadata[0].name
  values     = [for f in each.value.files : file("${local.charts}/infra/${f}")]
  atomic     = true
  timeout    = 900

  depends_on = [helm_release.wave1]
}

resource "helm_release" "wave3" {
  for_each   = local.wave3
  name       = each.key
  repository = local.repos[each.value.repo]
  chart      = each.value.chart
  version    = each.value.version
  namespace  = kubernetes_namespace_v1.this[each.value.namespace].metadata[0].name
  values     = [for f in each.value.files : file("${local.charts}/infra/${f}")]
  atomic     = true
  timeout    = 900

  depends_on = [helm_release.wave2]

  lifecycle {
    precondition {
      condition     = alltrue([for d in each.value.dependsOn : contains(concat(keys(local.wave1), keys(local.wave2)), d)])
      error_message = "${each.key} depends on a release that is neither installed here nor in an earlier wave: ${join(", ", each.value.dependsOn)}."
    }
  }
}

resource "helm_release" "trademesh" {
  name              = "trademesh"
  chart             = "${local.charts}/trademesh"
  namespace         = kubernetes_namespace_v1.this["trademesh"].metadata[0].name
  dependency_update = true
  atomic            = true
  timeout           = 900

  values = [
    file("${local.charts}/trademesh/values-${var.environment}.yaml"),
    yamlencode(local.trademesh_values),
    yamlencode(local.service_account_values),
    yamlencode(local.public_url_values),
  ]

  # Event Hubs is the Kafka: SASL_SSL, mechanism PLAIN, user "$ConnectionString", and the
  # namespace's connection string as the password (TRADEMESH_KAFKA_SASL_PASSWORD: global.secretEnv
  # above reads it from the trademesh-kafka Secret, which the chart's SecretProviderClass syncs
  # from Key Vault; never a value). Compression off: zstd, which values-prod.yaml picks for
  # Redpanda, is not a codec Event Hubs documents for Kafka.
  set = [
    { name = "global.env.TRADEMESH_KAFKA_BOOTSTRAP", value = var.kafka_bootstrap },
    { name = "global.env.TRADEMESH_KAFKA_SECURITY_PROTOCOL", value = "SASL_SSL" },
    { name = "global.env.TRADEMESH_KAFKA_SASL_MECHANISM", value = "PLAIN" },
    { name = "global.env.TRADEMESH_KAFKA_SASL_USERNAME", value = "$ConnectionString", type = "string" },
    { name = "global.env.TRADEMESH_KAFKA_COMPRESSION", value = "none" },
  ]

  # ServiceMonitor and PrometheusRule need kube-prometheus-stack's CRDs; market-data needs QuestDB.
  depends_on = [helm_release.wave1, helm_release.wave2, helm_release.wave3, kubernetes_secret_v1.trademesh_questdb]
}
