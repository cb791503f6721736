"""dpro-migrate: move the DPRO AI Agent's legacy SQLite database into seven domain schemas."""

__version__ = "0.1.0"

DOMAINS = ("iam", "ai_agents", "communication", "workflow", "tasks", "system", "marketplace")
