"""Codesign: TASDER search, accuracy proxies, operand sources, weight models (MiniLM, magnitude), pruning."""
