"""Input-bound by construction, in the workers: per_sample_transform.py's dataset (a 3x3 box blur
in pure Python, here three passes per image) read by two DataLoader workers, feeding a tiny model.
The workers cannot keep up: the main process waits on them for most of each step.

Expected verdict: input-bound, cause "wait"; the finding names the transform and `__getitem__`
(in per_sample_transform.py) from the WORKERS' stack samples (the main process only ever shows the
wait) and the share of the step time the main process waited."""

from per_sample_transform import Blurred, model_and_optimizer
from torch import nn
from torch.utils.data import DataLoader

if __name__ == "__main__":
    model, opt = model_and_optimizer()
    for x, y in DataLoader(Blurred(960, passes=3), batch_size=32, num_workers=2):  # LOOP-LINE
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
