"""Networks: plain nn.Modules built from the data's shape and class count; no Lightning."""
