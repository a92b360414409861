"""Built-in tasks: what ``memo-zoo run`` does with a recipe."""
