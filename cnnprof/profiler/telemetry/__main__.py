"""Entry point of the sampler process (started by `start_sampler`, see sampler.py)."""

from .sampler import main

if __name__ == "__main__":
    raise SystemExit(main())
