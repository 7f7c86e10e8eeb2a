"""Data: decoding, sketch extraction, rough-sketch and hint simulation, dataset preparation."""
