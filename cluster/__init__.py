"""What infra teams deploy: KubeRay manifests, launcher config, autoscaling, capacity planner."""
