"""The interactive drawing panel: a FastAPI app over the inference pipeline."""
