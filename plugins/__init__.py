"""Built-in memo-zoo plugins, registered through the memo_zoo entry-point group."""
