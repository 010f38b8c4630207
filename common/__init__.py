"""Shared package of the fine-tuning toolkit: arguments, data, prompts, encoding, models, training."""
