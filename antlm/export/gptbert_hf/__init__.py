"""Model code shipped inside GPT-BERT Hugging Face exports (loaded with trust_remote_code=True).

These modules are copied verbatim next to the exported weights, so they import only torch and
transformers, never antlm.
"""
