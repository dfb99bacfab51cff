"""Networks (plain ``nn.Module``s built from input shape + class count) and the Classifier."""
