"""Quota and admission: who may use how much, and who waits in which order."""
