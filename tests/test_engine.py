"""The loops: few reads of the device per epoch, and flip test-time augmentation that averages the two views."""

import torch
from torch import nn

from eva_helpers.engine import evaluate, train_epoch


def test_an_epoch_reads_the_device_only_at_its_checks_when_progress_is_off(monkeypatch):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    batches = [(torch.randn(4, 3, 2, 2), torch.randint(0, 3, (4,))) for _ in range(40)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    reads = {"item": 0, "tolist": 0}
    item, tolist = torch.Tensor.item, torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.__setitem__("item", reads["item"] + 1) or item(self))
    monkeypatch.setattr(
        torch.Tensor, "tolist", lambda self: reads.__setitem__("tolist", reads["tolist"] + 1) or tolist(self)
    )
    train_epoch(model=model, loader=batches, optimizer=optimizer, scheduler=scheduler, criterion=nn.CrossEntropyLoss(),
                device=torch.device("cpu"), channels_last=False, progress=False, check_every=20)  # fmt: skip
    assert reads == {"item": 2, "tolist": 2}  # the epoch's loss and accuracy; one read per 20-step check


def test_flip_tta_averages_the_logits_of_each_image_and_its_mirror():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))  # not flip-invariant: the two views differ
    batches = [(torch.randn(6, 3, 4, 4), torch.randint(0, 5, (6,))) for _ in range(2)]
    got = evaluate(model=model, loader=batches, device=torch.device("cpu"), channels_last=False, tta=True)
    plain = evaluate(model=model, loader=batches, device=torch.device("cpu"), channels_last=False)
    with torch.no_grad():
        logits = [(model(x) + model(x.flip(3))) / 2 for x, _ in batches]
    labels = [y for _, y in batches]
    loss = sum(nn.functional.cross_entropy(out, y, reduction="sum") for out, y in zip(logits, labels))
    assert abs(got["loss_sum"] - float(loss)) < 1e-4 and got["loss_sum"] != plain["loss_sum"]
    assert got["correct"] == sum(int((out.argmax(1) == y).sum()) for out, y in zip(logits, labels))


def learnable(n_per_class: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised 16x16 images of 10 classes, each with its own colour and stripes (tests/fakes.py), shuffled."""
    import numpy as np
    from fakes import class_image

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(10), n_per_class))
    x = torch.from_numpy(np.stack([class_image(int(c), rng, 16) for c in labels])).permute(0, 3, 1, 2).float()
    return (x - 128) / 64, torch.from_numpy(labels).long()


def test_an_epoch_teaches_a_small_net_the_classes():
    """The loop learns: held-out accuracy far above chance (10%). A flipped gradient or a skipped step fails here."""
    from eva_helpers.schedule import one_cycle

    torch.manual_seed(0)
    x, y = learnable(30, seed=0)
    x_test, y_test = learnable(10, seed=1)
    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(4),
                          nn.Flatten(), nn.Linear(16 * 16, 10))  # fmt: skip
    batches = [(x[i : i + 30], y[i : i + 30]) for i in range(0, len(y), 30)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    epochs = 4
    scheduler = one_cycle(optimizer=optimizer, max_lr=0.1, epochs=epochs, steps_per_epoch=len(batches), peak_epoch=1)
    before = evaluate(model=model, loader=[(x_test, y_test)], device=torch.device("cpu"), channels_last=False)
    losses = []
    for epoch in range(epochs):
        done = train_epoch(model=model, loader=batches, optimizer=optimizer, scheduler=scheduler, epoch=epoch,
                           criterion=nn.CrossEntropyLoss(), device=torch.device("cpu"), channels_last=False,
                           progress=False)  # fmt: skip
        losses.append(done["loss"])
    after = evaluate(model=model, loader=[(x_test, y_test)], device=torch.device("cpu"), channels_last=False)
    assert losses[-1] < losses[0] / 4, losses
    assert after["correct"] / after["seen"] >= 0.9, (before, after)
    assert after["loss_sum"] < before["loss_sum"] / 4
