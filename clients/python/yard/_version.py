"""The package version, also sent as READY ``version`` and in health reports."""

__version__ = "0.1.0"
