"""The box in the restaurant: voice data plane, dialog, edge print agent, setup UI, local store."""
