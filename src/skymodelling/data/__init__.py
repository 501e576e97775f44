"""Bundled data files (line lists, mask bits, tables), found with importlib.resources."""
