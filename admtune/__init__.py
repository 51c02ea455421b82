"""admtune: does adaptive memory (AdM) momentum, untuned, match or beat tuned momentum?"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("admtune")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
