"""Query-time stages that plug into a Qdrant query: relevance filter, rerankers ..."""
