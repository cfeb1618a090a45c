"""What infra teams deploy: KubeRay manifests, the Ray cluster launcher config, the capacity planner."""
