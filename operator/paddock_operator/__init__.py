"""Paddock operator: the paddock.dev API, CRD generation, and the kopf controllers that reconcile it."""
