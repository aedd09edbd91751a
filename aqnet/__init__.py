"""The application shell: CLI, configuration, daemon wiring, metrics, HTTP server and the local stack. Holds no
stage logic; the only package that imports all the others, and nothing imports it.
"""

#: nothing imports the shell; its parts, by folder and module
__all__ = ["api", "cli", "config", "daemon", "http", "localstack", "metrics"]
