"""Not a training loop: a multiprocessing.Pool (the platform's default start method) mapping a
pure-Python task over many small inputs, one task at a time, so each worker sends hundreds of
results (and cnnprof's pool workers write their samples after each). The work is all in the
children: their stacks must be in the run and in the report, the main process only waits."""

import multiprocessing


def collatz_steps(n: int) -> int:  # TASK-DEF
    longest = 0
    for start in range(n * 40 + 1, n * 40 + 400):
        steps, x = 0, start
        while x != 1:
            x = x // 2 if x % 2 == 0 else 3 * x + 1
            steps += 1
        longest = max(longest, steps)
    return longest


if __name__ == "__main__":
    with multiprocessing.Pool(2) as pool:
        results = pool.map(collatz_steps, range(600), chunksize=1)
    assert len(results) == 600
    print(max(results))
