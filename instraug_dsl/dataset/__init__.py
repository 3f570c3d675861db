"""Dataset-level utilities: filtering and de-duplication of augmented instructions."""
