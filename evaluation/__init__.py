"""`rag eval`: retrieval quality and latency on question sets, against baselines."""
