"""The local stack: python -m deploy.local.stack up|down|status|infra-up, and the demo load."""
