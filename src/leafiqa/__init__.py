"""LEAF."""
