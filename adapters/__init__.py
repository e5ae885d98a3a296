"""External integrations: Qdrant stores, LangChain, remote inference."""
