"""Backbones (any Hugging Face model, plus built-in offline ones), pooling, heads, save and load."""
