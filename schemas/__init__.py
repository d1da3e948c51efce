"""Contracts shared by every stage: options, Arrow schemas, docarray document classes."""
