"""Meta-tests: the suite catches planted bugs and accepts a correct independent implementation."""
