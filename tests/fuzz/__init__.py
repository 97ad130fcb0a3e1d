"""The fuzz stage (test_fuzz.py): seeded mutants of every input, run under ASan."""
