"""Paddock harness: drives AgentRuns with the OpenAI Agents SDK in Kubernetes sandboxes."""
