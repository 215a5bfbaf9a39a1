"""cnnprof: where does my training time (and energy) go, and why?"""

__version__ = "0.1.0"
