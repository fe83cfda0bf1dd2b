"""Corpus reading, tokenizer, token store, masking and the embedded synthetic corpus."""
