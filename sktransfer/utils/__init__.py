"""Utilities shared by the estimators (private helpers live in underscored modules)."""
