"""A multiprocessing Pool (spawn: each child a fresh interpreter), for tests/test_children.py. The
`with` block ends with Pool.terminate(), which stops the workers with SIGTERM."""

import multiprocessing


def crunch(n: int) -> int:
    total = 0
    for i in range(200_000):
        total += i * n % 7
    return total


if __name__ == "__main__":
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        print(sum(pool.map(crunch, range(6))))
