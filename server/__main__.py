"""``python -m modelport.server``: the same command as ``modelport serve``."""

from .serve_cli import serve

if __name__ == "__main__":
    serve(prog_name="python -m modelport.server")
