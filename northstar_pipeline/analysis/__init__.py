"""Commands that read a compiled project or a finished build: explain, lint."""
