"""The audionets version: its own module so that any layer can read it without importing the
package front door (``audionets/__init__.py``); pyproject.toml reads it too."""

__version__ = "0.1.0"
