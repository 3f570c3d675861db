"""The one version source (read by the build backend and by ``iatc --version``)."""

__version__ = "0.2.0"
