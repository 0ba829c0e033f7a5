output "releases" {
  description = "Helm releases installed: chart and pinned version (trademesh: the release's status)."
  value = merge(
    { for k, r in local.releases : k => "${r.chart}-${r.version}" },
    { trademesh = helm_release.trademesh.status },
  )
}
