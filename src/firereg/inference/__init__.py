"""Registration of pairs and series with a trained model, and export of its transforms."""
