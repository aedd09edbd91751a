"""The application shell: CLI, configuration, daemon wiring, metrics, HTTP server and the local stack. Holds no
stage logic; the only package that imports all the others, and nothing imports it.
"""
