"""Runs until stopped: Python work only."""

while True:
    sum(i * i for i in range(1000))
