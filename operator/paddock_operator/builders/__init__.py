"""Pure builders: desired Kubernetes objects from the paddock.dev API. No I/O, no kopf."""
