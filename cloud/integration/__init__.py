"""The integration plane: action lifecycle, POS write-back, webhooks, breakers, workers."""
