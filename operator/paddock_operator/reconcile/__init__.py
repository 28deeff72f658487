"""Pure reconcile decisions: observed objects and the clock in, a plan out. No I/O, no kopf."""
